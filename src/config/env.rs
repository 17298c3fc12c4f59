//! Where configuration reads environment variables, and which ones override
//! the file.
//!
//! Everything reads the environment through [`Env`], so tests pass a map and
//! never touch the process environment (`set_var` is banned in
//! `clippy.toml`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Default config file, relative to the working directory.
pub const DEFAULT_CONFIG: &str = "config/hotline.toml";

/// The config file to read, unless `--config` names one.
pub const CONFIG_VAR: &str = "HOTLINE_CONFIG";
/// Overrides `server.listen`.
pub const LISTEN_VAR: &str = "HOTLINE_LISTEN";
/// Overrides `server.admin_listen`.
pub const ADMIN_LISTEN_VAR: &str = "HOTLINE_ADMIN_LISTEN";
/// Overrides `server.log_format`.
pub const LOG_FORMAT_VAR: &str = "HOTLINE_LOG_FORMAT";
/// The bearer token the admin listener's `POST` endpoints require
/// (`/test-sms`); without it they answer only a gateway on the dev key.
pub const ADMIN_TOKEN_VAR: &str = "HOTLINE_ADMIN_TOKEN";
/// When set, the Redis store is used at this URL, whatever `store.kind` says.
pub const REDIS_URL_VAR: &str = "HOTLINE_REDIS_URL";

/// Where configuration reads environment variables from.
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

impl Env for BTreeMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
    }
}

/// Which config file to read: `--config`, else `HOTLINE_CONFIG`, else the default.
pub fn config_path(flag: Option<&Path>, env: &dyn Env) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| env.var(CONFIG_VAR).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

/// Whether `name` can be an environment variable the file names
/// (`secret_env = "HOTLINE_AT_SECRET"`): upper case, digits, `_`.
pub(super) fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}
