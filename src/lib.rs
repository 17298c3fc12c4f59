//! # hotline — an SMS/USSD gateway to lawyers on call
//!
//! A woman who has just been detained (or a friend) dials a USSD code or
//! texts a short code; a short menu asks where she is and what is happening;
//! the gateway records a case and offers it by SMS to the lawyer on call in
//! her city, escalating until someone accepts.
//!
//! ## Where a request goes
//!
//! An Africa's Talking USSD hop, `POST /webhooks/africastalking/ussd`:
//!
//! 1. [`server`] accepts it ([`server::public`]: route, client address,
//!    body cap and timeouts) and hands it to its channel.
//! 2. [`channel`] — here [`channel::africastalking`] — authenticates it
//!    (then the server applies the per-IP limit, which only authenticated
//!    requests spend) and parses the form into a [`channel::UssdIn`].
//! 3. The [`gateway::Gateway`] service decides what it is (which flow this
//!    channel starts) and hands it to [`conversation`], which runs the hop:
//!    store round trip one (dedupe, rate limit, load session), the pure
//!    [`flow::engine`], store round trip two (save session; record a case
//!    when the flow opened one). It returns a screen and a typed
//!    [`outcome::Outcome`].
//! 4. The channel renders the answer (`CON …` / `END …`); the server counts
//!    the outcome.
//! 5. When the hop opened a case, the same commit wrote its first offer to
//!    the [`outbox`] and its timers: the [`outbox::worker::Outbox`] sends the
//!    offer, the [`dispatch::timers::TimerWorker`] escalates if nobody
//!    accepts, and a lawyer's `OK 4821` by SMS comes back through
//!    `/webhooks/{channel}/sms` to the gateway, which — after deduplicating
//!    the delivery — sees the sender is a lawyer and hands it to
//!    [`dispatch`].
//!
//! An inbound SMS from anyone else takes the conversation path with
//! [`conversation::Conversations::sms`] (its screens go out through the
//! outbox). A delivery report goes to [`outbox::worker::Outbox::on_status`].
//!
//! ## Layers
//!
//! [`app`] builds everything from the config and wires it; [`server`] (HTTP)
//! calls only [`gateway`]; below it the domain services — [`conversation`],
//! [`dispatch`], [`outbox`] — each hold a narrow [`deps::Deps`] (store,
//! clock, keys, metrics, outbox wake-up), never the whole app. Background
//! work runs in [`worker::Workers`]; each worker has a `tick(now)` that tests
//! drive directly. The leaves — [`flow::engine`], [`dispatch::lifecycle`],
//! [`dispatch::roster`], [`template`], [`phone`], [`text`] — are pure.
//!
//! ## Modules
//!
//! - [`cli`] — `hotline serve | check | simulate | report | cases | oncall`;
//!   `main.rs` only calls it.
//! - [`config`] — the TOML config, environment overrides, validation (exit 64).
//! - [`app`] — builds and wires every part; the handle the listeners hold.
//! - [`server`] — hyper listeners: public webhooks, private admin (`/metrics`,
//!   `/healthz`, `/readyz`, the status page `/` and `/cases.json` in
//!   [`server::status`], `/console` for the development sink), graceful
//!   shutdown of listeners and workers.
//! - [`gateway`] — the service between HTTP and the domain; typed outcomes.
//! - [`outcome`] — how a webhook request ended (one enum, one label set).
//! - [`channel`] — one adapter per aggregator kind behind one trait.
//! - [`conversation`] — one inbound message in, one screen out.
//! - [`flow`] — the flow file format, its validator and lints, and the pure
//!   engine (`step(flow, state, caller, input, now)`).
//! - [`store`] — the store trait (two round trips per webhook), the
//!   embedded in-memory implementation and the Redis one (scripts in
//!   `src/store/lua/`), and [`store::keys`], every key name.
//! - [`case`] — what a completed flow records.
//! - [`dispatch`] — getting a case to a lawyer: the on-call [`dispatch::roster`]
//!   (rotations, overrides, escalation chains per city), the pure case
//!   [`dispatch::lifecycle`], lawyers' SMS commands, timers, statistics.
//! - [`outbox`] — every outbound SMS as a store job, the sender worker
//!   (within each channel's rate, retrying with backoff) and delivery reports.
//! - [`deps`] — the narrow dependencies domain services hold.
//! - [`worker`] — the background workers' lifecycle: store watch, spool
//!   replay, outbox sender, dispatch timers.
//! - [`privacy`] — keyed pseudonyms for logs and keys; sealing data at rest.
//! - [`phone`] — E.164 numbers with redacted `Debug`, and their countries.
//! - [`text`] — GSM-7/UCS-2 measuring, SMS parts, USSD limits, input digits.
//! - [`template`] — the one renderer of `{placeholder}` texts.
//! - [`metrics`] — every Prometheus metric, in one registry.
//! - [`spool`] — the durable local spool of cases completed while the store
//!   was down, replayed exactly once: one locked file per instance; any
//!   instance replays the files nobody holds.
//! - [`codes`] — case codes each instance leases while the store is up, so
//!   a code shown during an outage is the one her case gets.
//! - [`clock`] — the one clock (`jiff::Timestamp`), injectable.
//! - [`problem`] — config and flow problems, each naming its file and key.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

/// The release (`Cargo.toml`'s version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`git rev-parse --short
/// HEAD`, by build.rs), or "unknown" when not built from a git checkout.
pub const COMMIT: &str = env!("HOTLINE_GIT_COMMIT");
/// What `hotline --version` prints after the name: `0.1.0 (1a2b3c4)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HOTLINE_GIT_COMMIT"),
    ")"
);

pub mod app;
pub mod case;
pub mod channel;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod conversation;
pub mod deps;
pub mod dispatch;
pub mod flow;
pub mod gateway;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod phone;
pub mod privacy;
pub mod problem;
pub mod reload;
pub mod server;
pub mod spool;
pub mod store;
pub mod template;
pub mod text;
pub mod worker;
