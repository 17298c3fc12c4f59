//! Production or development: decided by the configuration itself, never
//! by the environment.
//!
//! A configuration is a **production** one when it says so
//! (`privacy.require_pii_key = true`) or when it can reach real phones: an
//! enabled aggregator channel with sending credentials (a `*_env` setting
//! naming its API key, auth token or password). Everything else — the
//! embedded default among them, whatever `HOTLINE_PII_KEY` holds — is a
//! **development** configuration.
//!
//! In a production configuration:
//! - placeholders left in the file ([`PLACEHOLDERS`]: `REPLACE`,
//!   `000 000 000`, `example.org`, `your-…`, and the shipped channels'
//!   all-zero Twilio SIDs and number, `xxxxx.api.infobip.com`) are errors:
//!   a woman must never be shown `+996 000 000 000` as the number to call;
//! - a lawyer still on a number of the example phones file, or on a
//!   fictional one (the demo roster's), is an error (checked with the
//!   roster: [`crate::dispatch::roster::Roster::production_problems`]);
//! - the `console` channel (the development sink) is an error: it would
//!   keep real numbers and texts in memory and show them on a page;
//! - a channel whose webhooks nobody authenticates (no `secret_env`, and no
//!   `allow_ips` or one holding a network wider than an IPv4 /8 or an IPv6
//!   /16, such as `0.0.0.0/0`; Twilio signs its own) is a warning: anyone could post as
//!   any number on it — use up a woman's per-number limit, which every
//!   channel shares, or send a command from a lawyer's number;
//! - the embedded store is a warning: a restart loses every open case;
//! - no `HOTLINE_PII_KEY` (without `require_pii_key`, which makes it an
//!   error) is a warning: the public development key protects nothing.

use crate::problem::{Problem, quoted};

use super::IpNet;
use super::schema::{ChannelKind, Config, StoreKind};

/// Text in a setting's value that marks a value nobody filled in: the
/// shipped configs' placeholders, each long enough that no real value
/// holds it (a Twilio SID is 32 random hex digits; no number starts
/// +1 000; an Infobip base URL has the account's own prefix).
pub const PLACEHOLDERS: &[&str] = &[
    "REPLACE",
    "000 000 000",
    "example.org",
    "your-",
    "AC00000000000000000000000000000000",
    "MG00000000000000000000000000000000",
    "+10000000000",
    "xxxxx.api.infobip.com",
];

impl Config {
    /// Why this is a production configuration (`None`: a development one).
    pub fn production(&self) -> Option<String> {
        if self.privacy.require_pii_key {
            return Some("privacy.require_pii_key = true".into());
        }
        self.channels
            .iter()
            .find(|c| c.kind != ChannelKind::Console && sends(c))
            .map(|c| format!("channel {:?} has sending credentials", c.name))
    }
}

/// Whether a channel names a sending secret (every kind's `*_env` setting
/// besides `secret_env`, which only authenticates webhooks).
fn sends(c: &super::ChannelConfig) -> bool {
    c.settings.keys().any(|k| k.ends_with("_env"))
}

/// Errors for a production configuration: every string value in `text`
/// holding a placeholder, and every enabled `console` channel.
pub(super) fn problems(config: &Config, text: &str) -> Vec<Problem> {
    let Some(why) = config.production() else {
        return Vec::new();
    };
    let file = config.source.as_str();
    let mut out = Vec::new();
    // Channels that name a secret_env (whose variable may still be unset:
    // that is its own error, not a missing setting).
    let mut named_secret: Vec<String> = Vec::new();
    if let Ok(mut table) = toml::from_str::<toml::Table>(text) {
        if let Some(toml::Value::Array(channels)) = table.get("channels") {
            named_secret = channels
                .iter()
                .filter(|ch| ch.get("secret_env").is_some())
                .filter_map(|ch| ch.get("name").and_then(toml::Value::as_str))
                .map(str::to_owned)
                .collect();
        }
        // A disabled channel's settings are not used: not checked either.
        if let Some(toml::Value::Array(channels)) = table.get_mut("channels") {
            for ch in channels.iter_mut() {
                if ch.get("enabled").and_then(toml::Value::as_bool) == Some(false) {
                    *ch = toml::Value::Table(toml::Table::new());
                }
            }
        }
        walk("", &toml::Value::Table(table), &mut |key, value| {
            if let Some(p) = PLACEHOLDERS.iter().find(|p| value.contains(*p)) {
                out.push(Problem::error(
                    file,
                    quoted(key, value),
                    format!("a placeholder ({p:?}) in a production configuration ({why}): put the real value"),
                ));
            }
        });
    }
    for c in config
        .channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Console)
    {
        out.push(Problem::error(
            file,
            format!("channels[name = {:?}].kind = \"console\"", c.name),
            format!("the console channel is a development sink and refuses to run in a production configuration ({why}): it would keep real numbers and messages in memory and show them on a page. Remove it or set enabled = false"),
        ));
    }
    for c in config.channels.iter().filter(|c| {
        !matches!(c.kind, ChannelKind::Twilio | ChannelKind::Console) && c.secret.is_none()
    }) {
        let open = if named_secret.contains(&c.name) {
            // Reported as an error already: the variable is unset.
            continue;
        } else if c.allow_ips.is_empty() {
            ""
        } else if c.allow_ips.iter().any(IpNet::is_wide) {
            ": its allow_ips holds a network wider than an IPv4 /8 or an IPv6 /16, which admits a large part of the internet"
        } else {
            continue;
        };
        out.push(Problem::warning(
            file,
            format!("channels[name = {:?}]", c.name),
            format!("accepts unauthenticated webhooks in a production configuration ({why}){open}: anyone can post as any number on it, a woman's (using up her per-number limit, which every channel shares) or a lawyer's (a command in her name). Set secret_env or allow_ips to the aggregator's own addresses"),
        ));
    }
    // A file that asked for Redis without its URL is an error already
    // (newcomer audit: the two lines contradicted each other).
    if config.store.kind == StoreKind::Memory && !config.store.redis_url_missing {
        out.push(Problem::warning(
            file,
            "store.kind = \"memory\"",
            format!("the embedded store in a production configuration ({why}): sessions, open cases, their escalation timers and queued SMS live in this process only, so a restart or a crash loses every open case — a woman told \"we will call you soon\" is never called, and her lawyer's OK finds no case. Set HOTLINE_REDIS_URL (docs/redis.md)"),
        ));
    }
    if config.privacy.is_dev_key {
        out.push(Problem::warning(
            file,
            "privacy.pii_key_env",
            format!("the key's variable (HOTLINE_PII_KEY unless renamed here) is not set: a production configuration ({why}) would run on the public development key, which anyone can use to reverse pseudonyms and open the sealed case data. Set it (openssl rand -base64 48), and privacy.require_pii_key = true so the gateway never starts without it"),
        ));
    }
    out
}

/// Call `f` with the dotted key of every string in `v`.
fn walk(key: &str, v: &toml::Value, f: &mut dyn FnMut(&str, &str)) {
    match v {
        toml::Value::String(s) => f(key, s),
        toml::Value::Table(t) => {
            for (k, v) in t {
                let k = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                walk(&k, v, f);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(&format!("{key}[{i}]"), v, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::super::parse;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<super::Config, Vec<String>> {
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        parse(text, "hotline.toml", &root().join("config"), &env)
            .map(|(c, _)| c)
            .map_err(|e| e.problems().iter().map(ToString::to_string).collect())
    }

    const DEFAULT: &str = include_str!("../../config/hotline.toml");
    const KEY: (&str, &str) = ("HOTLINE_PII_KEY", "k-0123456789-0123456789-0123456789");

    #[test]
    fn the_default_is_a_development_configuration_with_any_key() {
        let c = load(DEFAULT, &[]).expect("default loads");
        assert_eq!(c.production(), None);
        let c = load(DEFAULT, &[KEY]).expect("default loads with a key");
        assert_eq!(c.production(), None, "the environment does not decide");
    }

    #[test]
    fn require_pii_key_makes_placeholders_and_the_console_errors() {
        let text = DEFAULT.replace("# require_pii_key = false", "require_pii_key = true");
        let problems = load(&text, &[KEY]).expect_err("refused");
        let all = problems.join("\n");
        assert!(
            all.contains(r#"flows.fallback_phone = "+996 000 000 000": a placeholder ("000 000 000") in a production configuration (privacy.require_pii_key = true)"#),
            "{all}"
        );
        assert!(
            all.contains(r#"channels[name = "console"].kind = "console": the console channel is a development sink and refuses to run in a production configuration"#),
            "{all}"
        );
    }

    #[test]
    fn sending_credentials_make_a_production_configuration() {
        let text = DEFAULT.replace(
            "# api_key_env = \"HOTLINE_AT_API_KEY\"",
            "api_key_env = \"HOTLINE_AT_API_KEY\"\nusername = \"hotline\"",
        );
        let problems = load(&text, &[("HOTLINE_AT_API_KEY", "k")]).expect_err("refused");
        let all = problems.join("\n");
        assert!(
            all.contains(r#"(channel "africastalking" has sending credentials)"#),
            "{all}"
        );
        assert!(
            all.contains("console channel is a development sink"),
            "{all}"
        );
        assert!(
            all.contains(r#"hotline.toml: channels[name = "africastalking"]: accepts unauthenticated webhooks in a production configuration"#),
            "{all}"
        );
    }

    #[test]
    fn an_allow_list_admitting_everyone_is_no_authentication() {
        let base = DEFAULT.replace("# require_pii_key = false", "require_pii_key = true");
        for (list, warned) in [
            ("[\"0.0.0.0/0\"]", true),
            ("[\"203.0.113.0/24\", \"::/0\"]", true),
            ("[\"0.0.0.0/7\"]", true),
            ("[\"10.0.0.0/8\"]", false),
            ("[\"203.0.113.0/24\", \"2001:db8::/32\"]", false),
        ] {
            let text = base.replace(
                "# allow_ips = [\"192.0.2.0/24\"]",
                &format!("allow_ips = {list}"),
            );
            assert_ne!(text, base, "the shipped config lost its allow_ips example");
            let problems = load(&text, &[KEY]).expect_err("placeholders still refused");
            let all = problems.join("\n");
            assert_eq!(
                all.contains(
                    r#"channels[name = "africastalking"]: accepts unauthenticated webhooks"#
                ),
                warned,
                "{list}: {all}"
            );
            assert_eq!(
                all.contains("wider than an IPv4 /8"),
                warned,
                "{list}: {all}"
            );
        }
    }

    /// The shipped aggregators' placeholders, once their channel is
    /// enabled in a production configuration; real values pass.
    #[test]
    fn the_shipped_channels_placeholders_are_errors_and_real_values_pass() {
        let text = DEFAULT
            .replace("# require_pii_key = false", "require_pii_key = true")
            .replace("enabled = false\naccount_sid", "account_sid")
            .replace(
                "enabled = false\nsecret_env = \"HOTLINE_INFOBIP",
                "secret_env = \"HOTLINE_INFOBIP",
            );
        let env = [
            KEY,
            ("HOTLINE_TWILIO_AUTH_TOKEN", "t"),
            ("HOTLINE_INFOBIP_SECRET", "s-0123456789abcdef"),
            ("HOTLINE_INFOBIP_API_KEY", "k"),
        ];
        let all = load(&text, &env).expect_err("refused").join("\n");
        for want in [
            r#"channels[1].account_sid = "AC00000000000000000000000000000000": a placeholder"#,
            r#"channels[1].from = "+10000000000": a placeholder"#,
            r#"channels[3].base_url = "https://xxxxx.api.infobip.com": a placeholder"#,
        ] {
            assert!(all.contains(want), "{want}\n{all}");
        }
        let real = text
            .replace(
                "AC00000000000000000000000000000000",
                "AC3f9a0c55e1d2b7a8c4e6f0d1b2a3c4d5",
            )
            .replace("+10000000000", "+12025550143")
            .replace("xxxxx.api.infobip.com", "k3x9p2.api.infobip.com");
        let all = load(&real, &env)
            .expect_err("the other placeholders")
            .join("\n");
        for key in ["account_sid", "channels[1].from", "base_url"] {
            assert!(!all.contains(key), "{key}: {all}");
        }
    }

    #[test]
    fn an_authenticated_channel_is_no_warning() {
        let text = DEFAULT
            .replace("# require_pii_key = false", "require_pii_key = true")
            .replace(
                "# secret_env = \"HOTLINE_AT_SECRET\"",
                "secret_env = \"HOTLINE_AT_SECRET\"",
            );
        let problems = load(&text, &[KEY, ("HOTLINE_AT_SECRET", "s-0123456789abcdef")])
            .expect_err("placeholders still refused");
        let all = problems.join("\n");
        assert!(!all.contains("unauthenticated"), "{all}");
    }

    /// The README's production steps once ended on the embedded store, and
    /// `check` passed it: a restart then lost every open case. And without
    /// `require_pii_key`, a production configuration ran on the public key.
    #[test]
    fn production_on_the_memory_store_or_the_public_key_is_warned_of() {
        let text = DEFAULT.replace(
            "# api_key_env = \"HOTLINE_AT_API_KEY\"",
            "api_key_env = \"HOTLINE_AT_API_KEY\"\nusername = \"hotline\"",
        );
        let sends = ("HOTLINE_AT_API_KEY", "k");
        let redis = ("HOTLINE_REDIS_URL", "redis://127.0.0.1:6390/");
        let memory = r#"hotline.toml: store.kind = "memory": the embedded store in a production configuration (channel "africastalking" has sending credentials): sessions, open cases, their escalation timers and queued SMS live in this process only, so a restart or a crash loses every open case"#;
        let key = "hotline.toml: privacy.pii_key_env: the key's variable (HOTLINE_PII_KEY unless renamed here) is not set: a production configuration";
        let all = load(&text, &[sends]).expect_err("refused").join("\n");
        assert!(all.contains(memory), "{all}");
        assert!(all.contains(key), "{all}");
        let all = load(&text, &[sends, KEY, redis])
            .expect_err("refused")
            .join("\n");
        assert!(!all.contains("store.kind"), "{all}");
        assert!(!all.contains("pii_key_env"), "{all}");
        // A development configuration: neither.
        let dev = load(DEFAULT, &[]).expect("loads");
        assert!(dev.production().is_none());
        let (_, warnings) = super::super::parse(
            DEFAULT,
            "hotline.toml",
            &root().join("config"),
            &BTreeMap::new(),
        )
        .expect("loads");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
