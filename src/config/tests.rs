use super::*;
use std::collections::BTreeMap;

fn env(pairs: &[(&'static str, &'static str)]) -> BTreeMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

const MIN: &str = r#"
[flows]
dir = "../flows"
default = "legal_help"
fallback_phone = "+996 000 000 000"
[[channels]]
name = "africastalking"
kind = "africastalking"
"#;

fn ok(text: &str, e: &BTreeMap<&str, &str>) -> Config {
    match parse(text, "c.toml", Path::new("config"), e) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e:?}"),
    }
}

fn errors(text: &str, e: &BTreeMap<&str, &str>) -> Vec<String> {
    match parse(text, "c.toml", Path::new("config"), e) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(ps)) => ps.iter().map(ToString::to_string).collect(),
        Err(LoadError::Unreadable(p)) => vec![p.to_string()],
    }
}

#[test]
fn the_shipped_default_config_is_valid_and_embedded() {
    let text = include_str!("../../config/hotline.toml");
    let c = ok(text, &env(&[]));
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.max_body_bytes, 16 * 1024);
    assert_eq!(c.store.kind, StoreKind::Memory);
    assert!(c.privacy.is_dev_key);
    assert_eq!(c.channels[0].kind, ChannelKind::AfricasTalking);
    assert_eq!(c.channels[0].flow, "legal_help");
    assert_eq!(c.flows.display_dir, "flows");
    assert_eq!(c.flows.dir, Path::new("config/../flows"));
}

#[test]
fn environment_overrides_win_over_the_file() {
    let e = env(&[
        ("HOTLINE_LISTEN", "0.0.0.0:80"),
        ("HOTLINE_ADMIN_LISTEN", "127.0.0.1:9999"),
        ("HOTLINE_REDIS_URL", "redis://127.0.0.1:6390/"),
        ("HOTLINE_PII_KEY", "k-0123456789-0123456789-0123456789"),
    ]);
    let c = ok(MIN, &e);
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9999");
    assert_eq!(
        c.store.kind,
        StoreKind::Redis("redis://127.0.0.1:6390/".into())
    );
    assert!(!c.privacy.is_dev_key);
    assert_eq!(c.privacy.pii_key, b"k-0123456789-0123456789-0123456789");
}

#[test]
fn redis_urls_are_checked_without_showing_them() {
    let e = errors(
        MIN,
        &env(&[("HOTLINE_REDIS_URL", "rediss://:secret@h:6379/")]),
    );
    assert!(e.is_empty(), "rediss:// is accepted: {e:?}");
    let e = errors(
        MIN,
        &env(&[(
            "HOTLINE_REDIS_URL",
            "rediss://:secret@h:1,redis://:secret@g:2",
        )]),
    );
    assert!(e[0].contains("mixes rediss://"), "{e:?}");
    assert!(!e[0].contains("secret"));
    let e = errors(MIN, &env(&[("HOTLINE_REDIS_URL", "http://h")]));
    assert!(e[0].contains("must be redis://"), "{e:?}");
    let c = ok(
        MIN,
        &env(&[("HOTLINE_REDIS_URL", "redis://a:1,redis://b:2")]),
    );
    assert_eq!(
        c.store.kind,
        StoreKind::Redis("redis://a:1,redis://b:2".into())
    );
}

#[test]
fn the_previous_pii_key_is_read_checked_and_never_shown() {
    const KEY: &str = "k-0123456789-0123456789-0123456789";
    const OLD: &str = "o-0123456789-0123456789-0123456789";
    let c = ok(
        MIN,
        &env(&[("HOTLINE_PII_KEY", KEY), ("HOTLINE_PII_KEY_PREVIOUS", OLD)]),
    );
    assert_eq!(c.privacy.previous_pii_key.as_deref(), Some(OLD.as_bytes()));
    assert!(!format!("{:?}", c.privacy).contains("o-0123"));
    assert_eq!(
        ok(MIN, &env(&[("HOTLINE_PII_KEY", KEY)]))
            .privacy
            .previous_pii_key,
        None
    );
    for (previous, why) in [
        ("short", "must be at least 32 bytes"),
        (
            KEY,
            "is the same key as HOTLINE_PII_KEY: a rotation needs a new one",
        ),
    ] {
        let e = errors(
            MIN,
            &env(&[
                ("HOTLINE_PII_KEY", KEY),
                ("HOTLINE_PII_KEY_PREVIOUS", previous),
            ]),
        );
        assert!(
            e.contains(&format!(
                r#"environment: HOTLINE_PII_KEY_PREVIOUS="<hidden>": is not valid: {why}"#
            )),
            "{e:?}"
        );
        assert!(!e.iter().any(|p| p.contains(previous)), "{e:?}");
    }
}

#[test]
fn bad_environment_values_are_named() {
    let e = errors(
        MIN,
        &env(&[("HOTLINE_LISTEN", "nope"), ("HOTLINE_PII_KEY", "short")]),
    );
    assert!(e.contains(&r#"environment: HOTLINE_LISTEN="nope": is not valid: not an address like 127.0.0.1:8080"#.to_owned()), "{e:?}");
    assert!(
        e.contains(
            &r#"environment: HOTLINE_PII_KEY="<hidden>": is not valid: must be at least 32 bytes"#
                .to_owned()
        ),
        "{e:?}"
    );
    assert!(
        !e.iter().any(|p| p.contains("short")),
        "secrets are never echoed"
    );
}

/// A secret is written into a callback URL; one with `+`, `/` or `=`
/// (what `openssl rand -base64` gives) must be percent-encoded there, or
/// every request is refused: a warning, never echoing the value.
#[test]
fn a_secret_that_needs_percent_encoding_in_a_url_is_warned_of() {
    let text = MIN.replace(
        "kind = \"africastalking\"",
        "kind = \"africastalking\"\nsecret_env = \"AT_SECRET\"",
    );
    let warned = |value: &'static str| -> Vec<String> {
        let (_, problems) = parse(
            &text,
            "c.toml",
            Path::new("config"),
            &env(&[("AT_SECRET", value)]),
        )
        .expect("a warning only");
        problems.iter().map(ToString::to_string).collect()
    };
    let w = warned("ab+cd/ef=");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(r#"c.toml: channels[0].secret_env = "AT_SECRET": AT_SECRET holds characters that must be percent-encoded"#),
        "{w:?}"
    );
    assert!(!w[0].contains("ab+cd"), "never the value: {w:?}");
    assert!(warned("0123abcdef-_XYZ.~").is_empty());
}

#[test]
fn secrets_come_from_named_environment_variables() {
    let text = MIN.replace(
        "kind = \"africastalking\"",
        "kind = \"africastalking\"\nsecret_env = \"AT_SECRET\"\nallow_ips = [\"10.0.0.0/8\"]",
    );
    let c = ok(&text, &env(&[("AT_SECRET", "xyz")]));
    assert_eq!(c.channels[0].secret.as_deref(), Some("xyz"));
    assert!(
        !format!("{:?}", c.channels[0]).contains("xyz"),
        "Debug hides secrets"
    );
    let e = errors(&text, &env(&[]));
    assert_eq!(
        e,
        vec![
            r#"c.toml: channels[0].secret_env = "AT_SECRET": environment variable AT_SECRET is not set"#
        ]
    );
    let bad_ip = text.replace("10.0.0.0/8", "10.0.0.0/99");
    let e = errors(&bad_ip, &env(&[("AT_SECRET", "xyz")]));
    assert_eq!(
        e,
        vec![
            r#"c.toml: channels[0].allow_ips[0] = "10.0.0.0/99": not an IP address or network like 10.0.0.0/8"#
        ]
    );
}

#[test]
fn production_can_require_a_real_key() {
    let text = format!("[privacy]\nrequire_pii_key = true\n{MIN}");
    let e = errors(&text, &env(&[]));
    assert_eq!(
        e,
        vec![
            "c.toml: privacy.require_pii_key = true: HOTLINE_PII_KEY is not set",
            r#"c.toml: flows.fallback_phone = "+996 000 000 000": a placeholder ("000 000 000") in a production configuration (privacy.require_pii_key = true): put the real value"#,
            r#"c.toml: channels[name = "africastalking"]: accepts unauthenticated webhooks in a production configuration (privacy.require_pii_key = true): anyone can post as any number on it, a woman's (using up her per-number limit, which every channel shares) or a lawyer's (a command in her name). Set secret_env or allow_ips to the aggregator's own addresses"#,
            r#"c.toml: store.kind = "memory": the embedded store in a production configuration (privacy.require_pii_key = true): sessions, open cases, their escalation timers and queued SMS live in this process only, so a restart or a crash loses every open case — a woman told "we will call you soon" is never called, and her lawyer's OK finds no case. Set HOTLINE_REDIS_URL (docs/redis.md)"#,
        ]
    );
}

#[test]
fn unknown_keys_and_values_are_reported() {
    let e = errors(&format!("[server]\nlisten_on = \"x\"\n{MIN}"), &env(&[]));
    assert!(
        e[0].starts_with("c.toml: line 2: unknown field `listen_on`"),
        "{e:?}"
    );
    let e = errors(&format!("[store]\nkind = \"postgres\"\n{MIN}"), &env(&[]));
    assert_eq!(
        e,
        vec![r#"c.toml: store.kind = "postgres": must be "memory" or "redis""#]
    );
    let e = errors(&format!("[store]\nkind = \"redis\"\n{MIN}"), &env(&[]));
    assert_eq!(
        e,
        vec![r#"c.toml: store.kind = "redis": set HOTLINE_REDIS_URL to the Redis URL"#]
    );
    let e = errors(
        &MIN.replace("name = \"africastalking\"", "name = \"Bad Name\""),
        &env(&[]),
    );
    assert_eq!(
        e,
        vec![r#"c.toml: channels[0].name = "Bad Name": use lowercase letters, digits, `_` or `-`"#]
    );
    let e = errors("", &env(&[]));
    assert_eq!(
        e,
        vec!["c.toml: flows: missing: add a [flows] table with dir, default and fallback_phone"]
    );
}

#[test]
fn ip_networks_match() {
    let net = IpNet::parse("192.168.1.0/24").unwrap();
    assert!(net.contains("192.168.1.77".parse().unwrap()));
    assert!(!net.contains("192.168.2.1".parse().unwrap()));
    assert!(
        IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap())
    );
    assert!(
        IpNet::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap())
    );
    assert!(IpNet::parse("nonsense").is_none());
}

#[test]
fn a_redis_ca_file_must_be_a_readable_certificate_used_with_rediss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = format!(
        "{MIN}[store]\ntls_ca_file = {:?}\n",
        ca.display().to_string()
    );
    let c = ok(&text, &env(&[("HOTLINE_REDIS_URL", "rediss://h:1")]));
    assert_eq!(c.store.tls_ca_file.as_deref(), Some(ca.as_path()));
    let e = errors(&text, &env(&[("HOTLINE_REDIS_URL", "redis://h:1")]));
    assert!(
        e[0].contains("needs HOTLINE_REDIS_URL to use rediss://"),
        "{e:?}"
    );
    let missing = format!("{MIN}[store]\ntls_ca_file = \"no-such-ca.pem\"\n");
    let e = errors(&missing, &env(&[("HOTLINE_REDIS_URL", "rediss://h:1")]));
    assert!(e[0].contains("cannot be read"), "{e:?}");
}
