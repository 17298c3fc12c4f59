//! The shipped config files tell the truth: `config/hotline.toml` documents
//! every key the code accepts (and no other), and
//! `config/production.example.toml` works where its comment says to put it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::file;
use super::{ChannelConfig, ChannelKind, load, parse};

const DEFAULT: &str = include_str!("../../config/hotline.toml");
const PRODUCTION: &str = include_str!("../../config/production.example.toml");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One table of a config file as documented: its header and every key
/// written in it, set or commented out (`# key = …`).
#[derive(Debug, Default)]
struct DocTable {
    name: String,
    keys: Vec<String>,
    /// `kind = "…"` in a `[[channels]]` entry, `name = "…"` likewise.
    values: BTreeMap<String, String>,
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The tables of a TOML file, counting commented-out lines as written. A
/// comment line indented past `# ` is prose or a snippet of another
/// program's config (Kannel's), never a key.
fn documented(text: &str) -> Vec<DocTable> {
    let mut tables: Vec<DocTable> = Vec::new();
    for line in text.lines() {
        let l = line
            .strip_prefix("# ")
            .or_else(|| line.strip_prefix('#'))
            .unwrap_or(line);
        if l.starts_with(char::is_whitespace) {
            continue;
        }
        let header = l
            .strip_prefix("[[")
            .and_then(|h| h.split_once("]]"))
            .or_else(|| l.strip_prefix('[').and_then(|h| h.split_once(']')))
            .map(|(h, _)| h);
        if let Some(name) = header.filter(|h| is_key(h)) {
            tables.push(DocTable {
                name: name.to_owned(),
                ..DocTable::default()
            });
        } else if let Some((k, v)) = l.split_once('=')
            && is_key(k.trim())
            && let Some(t) = tables.last_mut()
        {
            let v = v.split('#').next().unwrap_or("").trim().trim_matches('"');
            t.keys.push(k.trim().to_owned());
            t.values.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    tables
}

fn set<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    keys.into_iter().map(str::to_owned).collect()
}

/// Every lowercase word in the source of the channel adapters: a superset
/// of the setting names they read, whatever way they read them.
fn words_in_channel_sources() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("src/channel is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is readable");
                out.extend(
                    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
                        .map(str::to_owned),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root().join("src/channel"), &mut out);
    out
}

/// The settings a kind's adapter accepts, besides the keys every channel
/// has: each candidate is offered at once, and the adapter names the ones
/// it does not know ("unknown setting").
fn adapter_keys(kind: ChannelKind, candidates: &BTreeSet<String>) -> BTreeSet<String> {
    const BOGUS: &str = "no_such_setting_anywhere";
    let settings: toml::Table = candidates
        .iter()
        .map(String::as_str)
        .chain([BOGUS])
        .map(|k| (k.to_owned(), toml::Value::from("x")))
        .collect();
    let cfg = ChannelConfig {
        name: "probe".into(),
        kind,
        flow: "legal_help".into(),
        secret: None,
        allow_ips: Vec::new(),
        settings,
        env: BTreeMap::new(),
    };
    let problems =
        match crate::channel::build(0, &cfg, "probe.toml", &crate::channel::http_client()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        };
    let unknown: BTreeSet<String> = problems
        .iter()
        .filter(|p| p.message.starts_with("unknown setting"))
        .filter_map(|p| p.key.strip_prefix("channels[0]."))
        .map(|k| k.split(' ').next().unwrap_or(k).to_owned())
        .collect();
    assert!(
        unknown.contains(BOGUS),
        "{kind:?}: the adapter no longer names unknown settings; this test must learn its new way: {problems:#?}"
    );
    let common = set(file::accepted_keys()
        .into_iter()
        .find(|(s, _)| *s == "channels")
        .map(|(_, k)| k)
        .unwrap_or_default());
    candidates
        .iter()
        .filter(|k| !unknown.contains(*k) && !common.contains(*k))
        .cloned()
        .collect()
}

fn diff(what: &str, accepted: &BTreeSet<String>, documented: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for k in accepted.difference(documented) {
        out.push(format!("{what}.{k}: accepted but not documented"));
    }
    for k in documented.difference(accepted) {
        out.push(format!("{what}.{k}: documented but not accepted"));
    }
    out
}

#[test]
fn hotline_toml_documents_every_key_the_config_accepts_and_no_other() {
    let tables = documented(DEFAULT);
    let mut problems = Vec::new();

    let sections: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    problems.extend(diff(
        "file",
        &set(file::sections().iter().copied()),
        &sections,
    ));

    for (section, keys) in file::accepted_keys() {
        let written: BTreeSet<String> = tables
            .iter()
            .filter(|t| t.name == section)
            .flat_map(|t| t.keys.iter().cloned())
            .collect();
        if section == "channels" {
            // The keys every channel has: documented on some channel.
            for k in set(keys).difference(&written) {
                problems.push(format!("channels.{k}: accepted but not documented"));
            }
        } else {
            problems.extend(diff(section, &set(keys), &written));
        }
    }

    let channels: Vec<&DocTable> = tables.iter().filter(|t| t.name == "channels").collect();
    let common = set(file::accepted_keys()
        .into_iter()
        .find(|(s, _)| *s == "channels")
        .map(|(_, k)| k)
        .unwrap_or_default());
    let mut candidates = words_in_channel_sources();
    candidates.extend(channels.iter().flat_map(|t| t.keys.iter().cloned()));
    for (name, kind) in ChannelKind::ALL {
        let Some(t) = channels
            .iter()
            .find(|t| t.values.get("kind").map(String::as_str) == Some(name))
        else {
            problems.push(format!("no [[channels]] entry with kind = {name:?}"));
            continue;
        };
        let written: BTreeSet<String> = t
            .keys
            .iter()
            .filter(|k| !common.contains(*k))
            .cloned()
            .collect();
        problems.extend(diff(
            &format!("channels[kind = {name:?}]"),
            &adapter_keys(kind, &candidates),
            &written,
        ));
    }
    assert!(
        problems.is_empty(),
        "config/hotline.toml and the code disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn hotline_toml_has_one_channel_of_each_kind_named_after_it() {
    let tables = documented(DEFAULT);
    let channels: Vec<(&str, &str)> = tables
        .iter()
        .filter(|t| t.name == "channels")
        .map(|t| (t.values["name"].as_str(), t.values["kind"].as_str()))
        .collect();
    let kinds: Vec<(&str, &str)> = ChannelKind::ALL.iter().map(|(n, _)| (*n, *n)).collect();
    assert_eq!(channels, kinds);
}

/// Every secret the file names, as if set.
fn all_secrets(text: &str) -> BTreeMap<&str, &str> {
    let mut env: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once("_env = \""))
        .filter_map(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| (name, "secret-0123456789-0123456789-0123456789"))
        .collect();
    env.insert(
        "HOTLINE_PII_KEY",
        "pii-key-0123456789-0123456789-0123456789",
    );
    env.insert("HOTLINE_REDIS_URL", "redis://10.0.0.5:6379/");
    env
}

#[test]
fn the_disabled_channels_in_hotline_toml_are_valid_once_enabled() {
    // With their secrets set this is a production configuration: the
    // placeholders must be filled in and the development sink removed.
    let text = DEFAULT.replace("enabled = false", "enabled = true");
    let text = fill_placeholders(&text[..text.find("# The development sink").expect("console")])
        .replace(
            "sms_channel = \"console\"",
            "sms_channel = \"africastalking\"",
        );
    let env = all_secrets(&text);
    let (config, _) = match parse(&text, "hotline.toml", &root().join("config"), &env) {
        Ok(x) => x,
        Err(e) => panic!("{:#?}", e.problems()),
    };
    assert!(config.disabled_channels.is_empty());
    assert!(config.production().is_some());
    assert_eq!(config.channels.len(), ChannelKind::ALL.len() - 1);
    let http = crate::channel::http_client();
    for (i, ch) in config.channels.iter().enumerate() {
        if let Err(problems) = crate::channel::build(i, ch, "hotline.toml", &http) {
            panic!("{}: {problems:#?}", ch.name);
        }
    }
}

/// The file with every placeholder replaced by a made-up real value.
fn fill_placeholders(text: &str) -> String {
    text.replace("+996 000 000 000", "+996 312 123 456")
        .replace("+380 000 000 000", "+380 53 200 0111")
        .replace("example.org", "hotline.test")
        .replace("your-at-username", "hotline")
        .replace(
            "AC00000000000000000000000000000000",
            "AC3f9a0c55e1d2b7a8c4e6f0d1b2a3c4d5",
        )
        .replace("+10000000000", "+12025550143")
        .replace("xxxxx.api.infobip.com", "k3x9p2.api.infobip.com")
}

#[test]
fn kannel_instructions_say_max_messages_0() {
    // Without it Kannel answers every woman's SMS with "Empty reply".
    let before_kannel = &DEFAULT[..DEFAULT.find("name = \"kannel\"").expect("a kannel channel")];
    let comment = &before_kannel[before_kannel.rfind("\n\n").unwrap_or(0)..];
    assert!(comment.contains("group = sms-service"), "{comment}");
    assert!(comment.contains("max-messages = 0"), "{comment}");
    let docs = std::fs::read_to_string(root().join("docs/channels.md")).expect("docs/channels.md");
    for block in docs.split("```").skip(1).step_by(2) {
        if block.contains("group = sms-service") {
            assert!(block.contains("max-messages = 0"), "{block}");
        }
    }
}

#[test]
fn the_production_example_works_where_its_comment_says_to_put_it() {
    // "Copy to /etc/hotline/hotline.toml (with flows/, roster.toml,
    // roster.phones.toml and lawyer_texts.toml beside it …)"
    assert!(PRODUCTION.contains("Copy to /etc/hotline/hotline.toml"));
    let beside = [
        "flows/",
        "roster.toml",
        "roster.phones.toml",
        "lawyer_texts.toml",
    ];
    for f in beside {
        assert!(PRODUCTION.contains(f), "the comment names {f}");
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let etc = tmp.path().join("etc/hotline");
    std::fs::create_dir_all(etc.join("flows")).expect("flows/");
    for f in beside.iter().filter(|f| f.ends_with(".toml")) {
        std::fs::write(etc.join(f), "").expect("file");
    }
    // As shipped, its placeholders stop it: the deploy gate.
    std::fs::write(etc.join("hotline.toml"), PRODUCTION).expect("config");
    let env = all_secrets(PRODUCTION);
    let problems = match load(&etc.join("hotline.toml"), &env) {
        Ok(_) => panic!("the example's placeholders must be errors"),
        Err(e) => e.problems().to_vec(),
    };
    assert!(!problems.is_empty());
    assert!(
        problems.iter().all(|p| p.message.contains("a placeholder")),
        "{problems:#?}"
    );
    std::fs::write(etc.join("hotline.toml"), fill_placeholders(PRODUCTION)).expect("config");
    let (config, _) = match load(&etc.join("hotline.toml"), &env) {
        Ok(x) => x,
        Err(e) => panic!("{:#?}", e.problems()),
    };
    let canon =
        |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(config.flows.dir.is_dir(), "{}", config.flows.dir.display());
    assert_eq!(canon(&config.flows.dir), canon(&etc.join("flows")));
    let dispatch = config.dispatch.expect("the example dispatches to lawyers");
    assert_eq!(canon(&dispatch.roster), canon(&etc.join("roster.toml")));
    assert_eq!(
        canon(&dispatch.texts),
        canon(&etc.join("lawyer_texts.toml"))
    );
    // The spool is state, not config: where the systemd unit keeps it.
    assert_eq!(config.store.spool_dir, Path::new("/var/lib/hotline/spool"));

    // Started without HOTLINE_AT_SECRET: the variable is what is missing
    // (an error), not secret_env (it is set) — no "unauthenticated" warning.
    let mut env = env;
    env.remove("HOTLINE_AT_SECRET");
    let problems: Vec<String> = match load(&etc.join("hotline.toml"), &env) {
        Ok(_) => panic!("an unset secret is an error"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    };
    assert!(
        problems.iter().any(|p| p.ends_with(
            r#"channels[0].secret_env = "HOTLINE_AT_SECRET": environment variable HOTLINE_AT_SECRET is not set"#
        )),
        "{problems:#?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains("unauthenticated")),
        "{problems:#?}"
    );
}

/// README and the default config list every placeholder the code treats as
/// one (in a production configuration).
#[test]
fn the_placeholder_list_is_the_documented_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in super::PLACEHOLDERS {
        assert!(readme.contains(&format!("`{p}`")), "README.md lacks `{p}`");
    }
    let comment: String = DEFAULT
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let comment = comment.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in super::PLACEHOLDERS
        .iter()
        .filter(|p| !p.starts_with("AC") && !p.starts_with("MG"))
    {
        assert!(
            comment.contains(p),
            "config/hotline.toml's header lacks {p}"
        );
    }
    assert!(comment.contains("all-zero Twilio SIDs"), "{comment}");
}
