//! Lawyer dispatch: getting an opened case to a lawyer who accepts it.
//!
//! - [`roster`] — who works where, who is on call in a city at any instant
//!   (rotations, overrides, time zones), and each city's escalation chain.
//!   Pure: loaded once from `config/roster.toml`, then queried with an
//!   instant; it never reads the clock and never does I/O after loading.
//!
//! Nothing here may log or report a lawyer's phone number.

pub mod roster;
