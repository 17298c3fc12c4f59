//! Reading a channel's kind-specific settings into its typed struct.
//!
//! Each kind's settings are one serde struct beside its adapter
//! (`#[serde(deny_unknown_fields)]`), read from the channel's TOML table by
//! [`Checks::read`] with `serde_path_to_error`, so every unknown, mistyped
//! or invalid key becomes a [`Problem`] naming `channels[i].key`. serde
//! stops at the first bad key: it is reported and set aside and the rest
//! read again, so `hotline check` and `hotline serve` report every bad key
//! at once, before any port is bound. The adapter then checks what a type
//! cannot (required keys, keys that need each other) through [`Checks`].
//!
//! Problems come in a fixed order: bad values, then the adapter's checks,
//! then unknown keys. A problem shows the value where that helps: a string
//! setting's text as written; for a number or a flag, the TOML text of what
//! was given (`tps = "\"5\""` says a string was given).
//!
//! Secrets are read from the environment variable a `*_env` key names (the
//! config loader has already read it and reported it when unset).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};

use crate::config::ChannelConfig;
use crate::problem::{Problem, quoted};

/// Keys every channel has, handled by the config loader itself.
const COMMON: &[&str] = &["name", "kind", "flow", "secret_env", "allow_ips"];

const NOT_A_STRING: &str = "must be a string";
const NOT_POSITIVE: &str = "must be a positive integer";
const NOT_A_FLAG: &str = "must be true or false";
const NOT_A_URL: &str = "must be an http:// or https:// URL";
const EMPTY: &str = "must not be empty";

/// The default `tps` of every kind that sends.
pub fn default_tps() -> u32 {
    10
}

/// For `deserialize_with`: a string that is not blank.
///
/// # Errors
/// Not a string, or blank.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(D::Error::custom(EMPTY));
    }
    Ok(Some(s))
}

/// For `deserialize_with`: an `http://` or `https://` URL, returned
/// without a trailing slash.
///
/// # Errors
/// Not a string, or not such a URL.
pub fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let u = String::deserialize(d)?;
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains(char::is_whitespace) {
        return Err(D::Error::custom(NOT_A_URL));
    }
    Ok(Some(u.trim_end_matches('/').to_owned()))
}

/// For `deserialize_with`: an integer from 1 to `u32::MAX`.
///
/// # Errors
/// Anything else.
pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::Integer(n) if n > 0 => {
            u32::try_from(n).map_err(|_| D::Error::custom(NOT_POSITIVE))
        }
        _ => Err(D::Error::custom(NOT_POSITIVE)),
    }
}

/// For `deserialize_with`: `true` or `false`.
///
/// # Errors
/// Anything else.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::Boolean(b) => Ok(b),
        _ => Err(D::Error::custom(NOT_A_FLAG)),
    }
}

/// A setting that is one of a few words.
pub trait Choice: Sized + Copy + 'static {
    /// Every word and its value, in the order problems list them.
    const ALL: &'static [(&'static str, Self)];
}

/// For `deserialize_with`: one of the words of a [`Choice`].
///
/// # Errors
/// Not a string, or not one of them.
pub fn one_of<'de, D: Deserializer<'de>, T: Choice>(d: D) -> Result<Option<T>, D::Error> {
    let s = String::deserialize(d)?;
    match T::ALL.iter().find(|(word, _)| *word == s) {
        Some((_, v)) => Ok(Some(*v)),
        None => {
            let words: Vec<&str> = T::ALL.iter().map(|(w, _)| *w).collect();
            Err(D::Error::custom(format!(
                "must be one of: {}",
                words.join(", ")
            )))
        }
    }
}

/// A channel's settings being read and checked; collects the problems.
pub struct Checks<'a> {
    cfg: &'a ChannelConfig,
    index: usize,
    file: &'a str,
    problems: Vec<Problem>,
    /// Unknown keys, reported last.
    unknown: Vec<Problem>,
    /// Keys reported as bad: not "missing" as well.
    refused: BTreeSet<String>,
}

impl<'a> Checks<'a> {
    /// Start on `cfg`, the `index`-th channel of `file`.
    pub fn new(cfg: &'a ChannelConfig, index: usize, file: &'a str) -> Self {
        Checks {
            cfg,
            index,
            file,
            problems: Vec::new(),
            unknown: Vec::new(),
            refused: BTreeSet::new(),
        }
    }

    /// The channel's config.
    pub fn cfg(&self) -> &'a ChannelConfig {
        self.cfg
    }

    /// Read the settings into `T`, reporting every key serde refuses;
    /// the refused keys are left out (so `T`'s fields must all be optional
    /// or defaulted). `None` only if the table cannot be read at all.
    pub fn read<T: DeserializeOwned>(&mut self) -> Option<T> {
        let mut table: toml::Table = self
            .cfg
            .settings
            .iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Each failed round removes one key, so this ends.
        loop {
            let err = match serde_path_to_error::deserialize(toml::Value::Table(table.clone())) {
                Ok(settings) => return Some(settings),
                Err(e) => e,
            };
            let key = match err.path().iter().next() {
                Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
                _ => String::new(),
            };
            let Some(value) = table.remove(&key) else {
                self.problems.push(Problem::error(
                    self.file,
                    format!("channels[{}]", self.index),
                    "settings could not be read",
                ));
                return None;
            };
            self.refuse(&key, &value, err.inner().message());
        }
    }

    /// Report a key serde refused, with the value where that helps.
    fn refuse(&mut self, key: &str, value: &toml::Value, message: &str) {
        self.refused.insert(key.to_owned());
        if message.starts_with("unknown field") {
            let p = Problem::error(
                self.file,
                self.key(key),
                format!("unknown setting for {} channels", self.cfg.kind.as_str()),
            );
            self.unknown.push(p);
            return;
        }
        // serde's own type errors come only from string settings: the
        // others read any value and say what they need.
        if message.starts_with("invalid type") {
            return self.problem(key, None, NOT_A_STRING);
        }
        let shown = match value {
            toml::Value::String(s) if message != NOT_POSITIVE && message != NOT_A_FLAG => s.clone(),
            v => v.to_string(),
        };
        self.problem(key, Some(&shown), message);
    }

    fn key(&self, k: &str) -> String {
        format!("channels[{}].{k}", self.index)
    }

    /// Record a problem with a key, with its value where that helps.
    pub fn problem(&mut self, key: &str, value: Option<&str>, message: impl Into<String>) {
        let k = match value {
            Some(v) => quoted(&self.key(key), v),
            None => self.key(key),
        };
        self.problems.push(Problem::error(self.file, k, message));
    }

    /// Record a warning about a key: `check` exits 3, `serve` runs.
    pub fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.problems
            .push(Problem::warning(self.file, self.key(key), message));
    }

    /// Whether the key was reported as bad already.
    pub fn refused(&self, key: &str) -> bool {
        self.refused.contains(key)
    }

    /// Whether the key is in the settings at all (even with a bad value).
    pub fn given(&self, key: &str) -> bool {
        self.cfg.settings.contains_key(key)
    }

    /// A setting the kind needs: a problem when it is missing (and was not
    /// reported as bad already).
    pub fn required<T>(&mut self, key: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.refused(key) {
            let kind = self.cfg.kind.as_str();
            self.problem(key, None, format!("missing: {kind} channels need it"));
        }
        value
    }

    /// The secret held by the environment variable `name`, as the config
    /// loader read it (it reported an unset one).
    pub fn secret(&self, name: Option<&str>) -> Option<String> {
        self.cfg.env.get(name?).cloned()
    }

    /// A secret the kind needs: a problem when `key` (ending in `_env`)
    /// names no variable.
    pub fn required_secret(&mut self, key: &str, name: Option<&str>) -> Option<String> {
        if name.is_none() && !self.refused(key) {
            let what = key.trim_end_matches("_env");
            self.problem(
                key,
                None,
                format!("missing: name the environment variable holding the {what}"),
            );
        }
        self.secret(name)
    }

    /// Every problem (empty when the settings are good).
    pub fn finish(mut self) -> Vec<Problem> {
        self.problems.append(&mut self.unknown);
        self.problems
    }
}
