//! `[[channels]]`: the aggregator accounts.
//!
//! This module checks the keys every channel has (name, kind, enabled,
//! flow, secret_env, allow_ips) and reads the environment variables that
//! kind-specific `*_env` settings name. The kind-specific settings
//! themselves are left in [`ChannelConfig::settings`] for the channel's
//! adapter to validate (`crate::channel`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::check::Ctx;
use super::env::{self, Env};
use super::ipnet::IpNet;
use super::schema::{ChannelConfig, ChannelKind};
use crate::problem::quoted;

/// One `[[channels]]` entry as written: the keys every channel has, then
/// everything else (the kind's own settings).
///
/// The common keys are fields of this struct rather than a flattened
/// struct of their own so that a mistyped value is reported with its line
/// (serde buffers flattened structs and loses the position).
#[derive(Debug, Deserialize)]
pub(super) struct RawChannel {
    name: String,
    kind: String,
    #[serde(default = "enabled_default")]
    enabled: bool,
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(flatten)]
    settings: toml::Table,
}

fn enabled_default() -> bool {
    true
}

/// The checked channels.
pub(super) struct Channels {
    /// Channels that serve webhooks.
    pub enabled: Vec<ChannelConfig>,
    /// Names of channels with `enabled = false`.
    pub disabled: Vec<String>,
}

/// Check every channel; a channel without its own `flow` starts `default_flow`.
pub(super) fn validate(
    raw: &[RawChannel],
    default_flow: &str,
    env: &dyn Env,
    c: &mut Ctx<'_>,
) -> Channels {
    let mut out = Channels {
        enabled: Vec::new(),
        disabled: Vec::new(),
    };
    let mut names = BTreeSet::new();
    for (i, ch) in raw.iter().enumerate() {
        let key = format!("channels[{i}]");
        check_name(&key, &ch.name, &mut names, c);
        let Some(kind) = kind(&key, &ch.kind, c) else {
            continue;
        };
        if !ch.enabled {
            // Kept for names and a clear 404; settings are checked once enabled.
            out.disabled.push(ch.name.clone());
            continue;
        }
        out.enabled.push(ChannelConfig {
            name: ch.name.clone(),
            kind,
            flow: ch.flow.clone().unwrap_or_else(|| default_flow.to_owned()),
            secret: secret(&key, ch.secret_env.as_deref(), env, c),
            allow_ips: allow_ips(&key, &ch.allow_ips, c),
            settings: ch.settings.clone(),
            env: setting_secrets(&key, &ch.settings, env, c),
        });
    }
    out
}

/// Names go into URLs and metric labels: a small alphabet, and unique.
fn check_name(key: &str, name: &str, seen: &mut BTreeSet<String>, c: &mut Ctx<'_>) {
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !name_ok {
        c.error(
            quoted(&format!("{key}.name"), name),
            "use lowercase letters, digits, `_` or `-`",
        );
    }
    if !seen.insert(name.to_owned()) {
        c.error(
            quoted(&format!("{key}.name"), name),
            "another channel has this name",
        );
    }
}

fn kind(key: &str, kind: &str, c: &mut Ctx<'_>) -> Option<ChannelKind> {
    let found = ChannelKind::ALL
        .iter()
        .find(|(n, _)| *n == kind)
        .map(|(_, k)| *k);
    if found.is_none() {
        let known: Vec<&str> = ChannelKind::ALL.iter().map(|(n, _)| *n).collect();
        c.error(
            quoted(&format!("{key}.kind"), kind),
            format!("unknown kind (known: {})", known.join(", ")),
        );
    }
    found
}

/// The shared secret from the variable `secret_env` names.
fn secret(key: &str, secret_env: Option<&str>, env: &dyn Env, c: &mut Ctx<'_>) -> Option<String> {
    let name = secret_env?;
    if !env::name_ok(name) {
        c.error(
            quoted(&format!("{key}.secret_env"), name),
            "not an environment variable name",
        );
        return None;
    }
    let value = env.var(name);
    match &value {
        None => c.error(
            quoted(&format!("{key}.secret_env"), name),
            format!("environment variable {name} is not set"),
        ),
        // It is written into a callback URL (`?secret=…`): a `+` there
        // arrives as a space, a `/` or `=` may be taken apart, and every
        // request is then refused 403. The value is never shown.
        Some(v)
            if !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) =>
        {
            c.warning(
                quoted(&format!("{key}.secret_env"), name),
                format!("{name} holds characters that must be percent-encoded where the secret is written into a URL (the aggregator's callback URL, Kannel's get-url): `+` as %2B, `/` as %2F, `=` as %3D; written as they are, every request is refused 403. Use letters, digits, - and _ only (openssl rand -hex 32)"),
            );
        }
        Some(_) => {}
    }
    value
}

fn allow_ips(key: &str, ips: &[String], c: &mut Ctx<'_>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (j, ip) in ips.iter().enumerate() {
        match IpNet::parse(ip) {
            Some(net) => nets.push(net),
            None => c.error(
                quoted(&format!("{key}.allow_ips[{j}]"), ip),
                "not an IP address or network like 10.0.0.0/8",
            ),
        }
    }
    nets
}

/// Settings ending in `_env` name secrets: read them now so a missing one
/// is reported before any port is bound.
fn setting_secrets(
    key: &str,
    settings: &toml::Table,
    env: &dyn Env,
    c: &mut Ctx<'_>,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for (k, v) in settings {
        if let (true, Some(name)) = (k.ends_with("_env"), v.as_str()) {
            match env.var(name) {
                Some(val) => {
                    values.insert(name.to_owned(), val);
                }
                None => c.error(
                    quoted(&format!("{key}.{k}"), name),
                    format!("environment variable {name} is not set"),
                ),
            }
        }
    }
    values
}

/// The keys every channel has: those [`RawChannel`] takes for itself
/// instead of leaving in `settings`. Every word of this file is tried as a
/// key whose value (a table) no field accepts: a field refuses it, while
/// `settings` would take it.
#[cfg(test)]
pub(super) fn common_keys() -> Vec<&'static str> {
    let words: BTreeSet<&'static str> = include_str!("channels.rs")
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect();
    words
        .into_iter()
        .filter(|w| {
            let mut t = toml::Table::new();
            t.insert("name".into(), "n".into());
            t.insert("kind".into(), "k".into());
            t.insert((*w).to_owned(), toml::Value::Table(toml::Table::new()));
            toml::Value::Table(t).try_into::<RawChannel>().is_err()
        })
        .collect()
}
