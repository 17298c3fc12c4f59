//! Typed access to a channel's kind-specific settings, for adapters.
//!
//! Each adapter reads the keys it knows through [`Settings`]; every missing,
//! mistyped or unknown key becomes a [`Problem`] naming
//! `channels[i].key`, so `hotline check` and `hotline serve` report them all
//! before any port is bound. Secrets are read from the environment variable
//! a `*_env` key names (the config loader has already read it).

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::config::ChannelConfig;
use crate::problem::{Problem, quoted};

/// Keys every channel has, handled by the config loader itself.
const COMMON: &[&str] = &["name", "kind", "flow", "secret_env", "allow_ips"];

/// A channel's settings being read by its adapter.
pub struct Settings<'a> {
    cfg: &'a ChannelConfig,
    index: usize,
    file: &'a str,
    used: RefCell<BTreeSet<String>>,
    problems: RefCell<Vec<Problem>>,
}

impl<'a> Settings<'a> {
    /// Start reading `cfg` (the `index`-th channel of `file`).
    pub fn new(cfg: &'a ChannelConfig, index: usize, file: &'a str) -> Self {
        Settings {
            cfg,
            index,
            file,
            used: RefCell::new(BTreeSet::new()),
            problems: RefCell::new(Vec::new()),
        }
    }

    fn key(&self, k: &str) -> String {
        format!("channels[{}].{k}", self.index)
    }

    /// Record a problem with a key.
    pub fn problem(&self, key: &str, value: Option<&str>, message: impl Into<String>) {
        let k = match value {
            Some(v) => quoted(&self.key(key), v),
            None => self.key(key),
        };
        self.problems
            .borrow_mut()
            .push(Problem::error(self.file, k, message));
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Option<String> {
        self.used.borrow_mut().insert(key.to_owned());
        match self.cfg.settings.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(key, None, "must be a string");
                None
            }
        }
    }

    /// A required string (an empty string if missing, with a problem).
    pub fn str(&self, key: &str) -> String {
        match self.opt_str(key) {
            Some(s) if !s.trim().is_empty() => s,
            Some(_) => {
                self.problem(key, Some(""), "must not be empty");
                String::new()
            }
            None => {
                self.problem(
                    key,
                    None,
                    format!("missing: {} channels need it", self.cfg.kind.as_str()),
                );
                String::new()
            }
        }
    }

    /// A string with a default.
    pub fn str_or(&self, key: &str, default: &str) -> String {
        self.opt_str(key).unwrap_or_else(|| default.to_owned())
    }

    /// An optional URL (`http://` or `https://`), without a trailing slash.
    pub fn opt_url(&self, key: &str) -> Option<String> {
        let u = self.opt_str(key)?;
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || u.contains(char::is_whitespace)
        {
            self.problem(key, Some(&u), "must be an http:// or https:// URL");
            return None;
        }
        Some(u.trim_end_matches('/').to_owned())
    }

    /// A required URL.
    pub fn url(&self, key: &str) -> String {
        match self.opt_url(key) {
            Some(u) => u,
            None => {
                if !self
                    .problems
                    .borrow()
                    .iter()
                    .any(|p| p.key.starts_with(&self.key(key)))
                {
                    self.problem(
                        key,
                        None,
                        format!("missing: {} channels need it", self.cfg.kind.as_str()),
                    );
                }
                String::new()
            }
        }
    }

    /// The secret held by the environment variable that `key` (ending in
    /// `_env`) names. Missing variables were reported by the config loader.
    pub fn secret(&self, key: &str) -> String {
        match self.opt_secret(key) {
            Some(s) => s,
            None => {
                if self.cfg.settings.get(key).is_none() {
                    self.problem(
                        key,
                        None,
                        format!(
                            "missing: name the environment variable holding the {}",
                            key.trim_end_matches("_env")
                        ),
                    );
                }
                String::new()
            }
        }
    }

    /// An optional secret (see [`Settings::secret`]).
    pub fn opt_secret(&self, key: &str) -> Option<String> {
        let name = self.opt_str(key)?;
        self.cfg.env.get(&name).cloned()
    }

    /// A positive integer with a default.
    pub fn u32_or(&self, key: &str, default: u32) -> u32 {
        self.used.borrow_mut().insert(key.to_owned());
        match self.cfg.settings.get(key) {
            None => default,
            Some(toml::Value::Integer(n)) if *n > 0 && *n <= i64::from(u32::MAX) => *n as u32,
            Some(v) => {
                self.problem(key, Some(&v.to_string()), "must be a positive integer");
                default
            }
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.used.borrow_mut().insert(key.to_owned());
        match self.cfg.settings.get(key) {
            None => default,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => {
                self.problem(key, Some(&v.to_string()), "must be true or false");
                default
            }
        }
    }

    /// One of a fixed set of strings, with a default.
    pub fn choice(&self, key: &str, allowed: &[&str], default: &str) -> String {
        let v = self.str_or(key, default);
        if !allowed.contains(&v.as_str()) {
            self.problem(
                key,
                Some(&v),
                format!("must be one of: {}", allowed.join(", ")),
            );
            return default.to_owned();
        }
        v
    }

    /// Finish: report keys nobody read; return every problem (empty when
    /// the settings are good).
    pub fn finish(self) -> Vec<Problem> {
        let used = self.used.borrow().clone();
        for key in self.cfg.settings.keys() {
            if !used.contains(key) && !COMMON.contains(&key.as_str()) {
                self.problem(
                    key,
                    None,
                    format!("unknown setting for {} channels", self.cfg.kind.as_str()),
                );
            }
        }
        self.problems.into_inner()
    }
}
