//! Configuration: the TOML file, environment overrides, and validation.
//!
//! Everything is read and checked before a port is bound. Each problem names
//! its file and key (`config/hotline.toml: server.listen = "x": …`) or its
//! environment variable; `hotline serve` exits 64 (EX_USAGE) on any error.
//!
//! Secrets never live in the file: the file names the environment variable
//! that holds each one (`secret_env = "HOTLINE_AT_SECRET"`). Environment is
//! read through the [`Env`] trait so tests pass a map instead of touching the
//! process environment.
//!
//! Relative paths in the file are relative to the file's own folder.
//!
//! # Layout
//!
//! - `env`: the [`Env`] trait and the variables that override the file;
//! - `schema`: the validated types the rest of the gateway reads
//!   ([`Config`] and its sections);
//! - `file`: the file's shape, gathered from one serde struct per section;
//! - one validator per section, each beside its serde struct: `server`,
//!   `store`, `privacy`, `limits`, `outbox`, `flows`, `dispatch`,
//!   `channels` (the keys every channel has; each kind's own settings are
//!   checked by its adapter in `crate::channel`);
//! - `production`: whether this is a production configuration (decided by
//!   the file, never the environment), and what that forbids: placeholders
//!   and the `console` channel;
//! - `check`: the problem collector they share; `ipnet`: `allow_ips`.

mod channels;
mod check;
mod dispatch;
mod env;
mod file;
mod flows;
mod ipnet;
mod limits;
mod outbox;
mod privacy;
mod production;
mod schema;
mod server;
mod store;

use std::path::{Path, PathBuf};

pub use env::{ADMIN_TOKEN_VAR, DEFAULT_CONFIG, Env, ProcessEnv, config_path};
pub use ipnet::IpNet;
pub use outbox::DEFAULT_POLL_MS;
pub use production::PLACEHOLDERS;
pub use schema::{
    AdminToken, ChannelConfig, ChannelKind, Config, DispatchConfig, FlowsConfig, Limits,
    OutboxConfig, PrivacyConfig, ServerConfig, StoreConfig, StoreKind,
};

use crate::problem::Problem;
use check::Ctx;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all (`hotline check` exits 2).
    #[error("{0}")]
    Unreadable(Problem),
    /// The file was read; these problems were found (errors among them).
    #[error("{} problem(s) in the configuration", .0.len())]
    Invalid(Vec<Problem>),
}

impl LoadError {
    /// Every problem found, to show the operator.
    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::Unreadable(p) => std::slice::from_ref(p),
            LoadError::Invalid(ps) => ps,
        }
    }
}

/// Load and validate the configuration at `path`.
///
/// # Errors
/// [`LoadError::Unreadable`] when the file cannot be read;
/// [`LoadError::Invalid`] with every problem otherwise.
pub fn load(path: &Path, env: &dyn Env) -> Result<(Config, Vec<Problem>), LoadError> {
    refuse_errors(load_with_errors(path, env)?)
}

/// A configuration with its problems, or every problem when one is an
/// error.
fn refuse_errors(
    (config, problems): (Config, Vec<Problem>),
) -> Result<(Config, Vec<Problem>), LoadError> {
    if problems.iter().any(Problem::is_error) {
        Err(LoadError::Invalid(problems))
    } else {
        Ok((config, problems))
    }
}

/// Parse and validate configuration text (`file` names it in problems;
/// relative paths resolve against `base`).
///
/// Each section has its own validator; they run in the file's order, so
/// problems are listed in that order too.
///
/// # Errors
/// [`LoadError::Invalid`] with every problem found.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Env,
) -> Result<(Config, Vec<Problem>), LoadError> {
    refuse_errors(parse_with_errors(text, file, base, env)?)
}

/// Like [`load`], but a file that is read and is TOML of the right shape
/// gives its configuration even when values in it are errors (each
/// replaced by its default or left out), with every problem: for `check`,
/// to look at the flows and roster it names as well and report every
/// problem in one run. Never to run on.
///
/// # Errors
/// [`LoadError`] when the file cannot be read or is not valid TOML of
/// the configuration's shape.
pub fn load_with_errors(path: &Path, env: &dyn Env) -> Result<(Config, Vec<Problem>), LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadError::Unreadable(Problem::error(&file, "", format!("cannot read: {e}")))
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parse_with_errors(&text, &file, &base, env)
}

fn parse_with_errors(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Env,
) -> Result<(Config, Vec<Problem>), LoadError> {
    let raw = file::read(text, file)?;
    let mut c = Ctx::new(file);
    let server = server::validate(&raw.server, env, &mut c);
    let store = store::validate(&raw.store, base, env, &mut c);
    let privacy = privacy::validate(&raw.privacy, env, &mut c);
    let limits = limits::validate(&raw.limits, &mut c);
    let outbox = outbox::validate(&raw.outbox, &mut c);
    let flows = flows::validate(raw.flows.as_ref(), base, &mut c);
    let dispatch = dispatch::validate(raw.dispatch.as_ref(), base, &mut c);
    let channels = channels::validate(&raw.channels, &flows.default, env, &mut c);
    dispatch::check_sms_channel(dispatch.as_ref(), &channels.enabled, &mut c);
    let config = Config {
        source: file.to_owned(),
        server,
        store,
        privacy,
        limits,
        outbox,
        flows,
        dispatch,
        channels: channels.enabled,
        disabled_channels: channels.disabled,
    };
    c.problems.extend(production::problems(&config, text));
    Ok((config, c.problems))
}

#[cfg(test)]
mod docs_tests;
#[cfg(test)]
mod tests;
