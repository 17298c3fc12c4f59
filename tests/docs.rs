//! The README, `docs/` and `ops/` say what the code does. (The shipped
//! config files are checked in `src/config/docs_tests.rs`.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use hotline::channel::{Channel, Event};
use hotline::config::ChannelConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The shipped config with every channel enabled and every secret it names
/// set. That makes it a production configuration, so its placeholders are
/// filled in and the console channel (refused there) is added afterwards.
fn every_channel() -> Vec<ChannelConfig> {
    let text = read("config/hotline.toml")
        .replace("enabled = false", "enabled = true")
        .replace(
            "sms_channel = \"console\"",
            "sms_channel = \"africastalking\"",
        )
        .replace("+996 000 000 000", "+996 312 123 456")
        .replace("+380 000 000 000", "+380 53 200 0111")
        .replace("example.org", "hotline.test")
        .replace(
            "AC00000000000000000000000000000000",
            "AC0123456789abcdef0123456789abcdef",
        )
        .replace("+10000000000", "+12025550143")
        .replace("xxxxx.api.infobip.com", "k3x9p2.api.infobip.com");
    let text = &text[..text
        .find("# The development sink")
        .expect("a console channel")];
    let env: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once("_env = \"")?.1.split_once('"'))
        .map(|(name, _)| (name, "secret-0123456789-0123456789-0123456789"))
        .collect();
    let mut channels =
        match hotline::config::parse(text, "hotline.toml", &root().join("config"), &env) {
            Ok((config, _)) => config.channels,
            Err(e) => panic!("{:#?}", e.problems()),
        };
    channels.push(ChannelConfig {
        name: "console".into(),
        kind: hotline::config::ChannelKind::Console,
        flow: "legal_help".into(),
        secret: None,
        allow_ips: Vec::new(),
        settings: toml::Table::new(),
        env: BTreeMap::new(),
    });
    channels
}

fn build(cfg: &ChannelConfig) -> Arc<dyn Channel> {
    hotline::channel::build(0, cfg, "hotline.toml", &hotline::channel::http_client())
        .unwrap_or_else(|p| panic!("{}: {p:#?}", cfg.name))
}

/// How the README writes the methods a channel accepts for an event.
fn methods(ch: &dyn Channel, event: Event) -> String {
    match ch.methods(event) {
        None => "—".to_owned(),
        Some(ms) => ms.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
    }
}

#[test]
fn the_readme_lists_the_methods_each_kind_of_channel_accepts() {
    let readme = read("README.md");
    let header = "| kind | `ussd` | `sms` | `status` |";
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != header)
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let channels = every_channel();
    assert_eq!(
        table.len(),
        channels.len(),
        "one row per kind of channel: {table:#?}"
    );
    for row in table {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let kind = cells[0].trim_matches('`');
        let cfg = channels
            .iter()
            .find(|c| c.kind.as_str() == kind)
            .unwrap_or_else(|| panic!("README row for an unknown kind: {row}"));
        for (cell, event) in cells[1..]
            .iter()
            .zip([Event::Ussd, Event::Sms, Event::Status])
        {
            // `A; B with `key = "value"``: A as configured, B with that setting.
            let mut variants = cell.split("; ");
            let plain = variants.next().unwrap_or_default();
            assert_eq!(methods(&*build(cfg), event), plain, "{kind} {event:?}");
            for variant in variants {
                let (want, setting) = variant
                    .split_once(" with `")
                    .unwrap_or_else(|| panic!("{kind}: cannot read {variant:?}"));
                let (key, value) = setting
                    .trim_end_matches('`')
                    .split_once(" = ")
                    .expect("key = value");
                let mut changed = cfg.clone();
                changed
                    .settings
                    .insert(key.to_owned(), value.trim_matches('"').into());
                assert_eq!(
                    methods(&*build(&changed), event),
                    want,
                    "{kind} {event:?} {setting}"
                );
            }
        }
    }
}

#[test]
fn the_readme_and_docs_run_the_binary_one_way() {
    let mut files = vec![("README.md".to_owned(), read("README.md"))];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = format!("docs/{}", path.file_name().unwrap_or_default().display());
            files.push((name, std::fs::read_to_string(&path).expect("doc")));
        }
    }
    let mut wrong = Vec::new();
    for (name, text) in &files {
        let mut in_block = false;
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("```") {
                in_block = !in_block;
                continue;
            }
            // One build: every `cargo run` is `cargo run --release --`.
            let cargo_run_ok = line
                .match_indices("cargo run")
                .all(|(at, _)| line[at..].starts_with("cargo run --release -- "));
            // A command to type runs it the same way (prose may say `hotline check`).
            let code = in_block || line.starts_with("    ");
            let bare = code
                && ["serve", "check", "simulate", "report"].iter().any(|c| {
                    line.split_whitespace()
                        .collect::<Vec<_>>()
                        .windows(2)
                        .any(|w| w[0] == "hotline" && w[1] == *c)
                });
            if !cargo_run_ok || bare {
                wrong.push(format!("{name}:{}: {line}", i + 1));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "use `cargo run --release -- …`:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_redis_docs_name_every_script_and_the_idle_cost() {
    let docs = read("docs/redis.md");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("src/store/lua")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".lua") && !docs.contains(&format!("`{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/redis.md must say what each script does: {missing:?}"
    );
    // One claim per poll for each of the two workers while idle.
    let per_sec = 2 * 1000 / hotline::config::DEFAULT_POLL_MS;
    assert!(
        docs.contains(&format!(
            "An idle instance sends {per_sec} commands a second"
        )),
        "docs/redis.md states the idle cost of the default poll"
    );
}

#[test]
fn the_runbook_says_how_often_store_up_is_refreshed() {
    let runbook = read("ops/RUNBOOK.md");
    let secs = hotline::worker::STORE_PING_INTERVAL.as_secs();
    assert!(
        runbook.contains(&format!("pings its store every {secs} seconds")),
        "ops/RUNBOOK.md must say hotline_store_up is refreshed every {secs} s"
    );
    assert!(!runbook.contains("refreshed by traffic"));
}

/// The recheck's window and bound, as the Redis docs, the runbook, the
/// alert and the metric's help state them.
#[test]
fn the_docs_give_the_window_in_which_lost_cases_are_recorded_again() {
    let flat = |path: &str| read(path).split_whitespace().collect::<Vec<_>>().join(" ");
    let minutes = match hotline::spool::RECHECK_WINDOW_MS {
        3_600_000 => "hour",
        other => panic!("say {other} ms in words in the docs, then here"),
    };
    let max = hotline::spool::RECHECK_MAX;
    let max = format!("{},{:03}", max / 1000, max % 1000);
    let redis = flat("docs/redis.md");
    assert!(
        redis.contains(&format!("recorded in the last {minutes} (at most {max};")),
        "docs/redis.md states the window and the bound"
    );
    let runbook = flat("ops/RUNBOOK.md");
    assert!(
        runbook.contains(&format!("recorded in the last {minutes} (up to {max})")),
        "ops/RUNBOOK.md states the window and the bound"
    );
    for path in [
        "ops/prometheus/alerts.yml",
        "src/metrics.rs",
        "ops/redis/redis.conf",
    ] {
        assert!(
            flat(path).contains(&format!("recorded in the {minutes} before"))
                || flat(path).contains(&format!("recorded in the last {minutes}")),
            "{path} states the window"
        );
    }
}

#[test]
fn the_dispatch_docs_give_the_exit_code_of_report_on_the_memory_store() {
    let docs = read("docs/dispatch.md");
    let code = hotline::cli::EXIT_CONFIG;
    assert!(
        docs.contains(&format!("exits {code} instead of printing empty tables")),
        "docs/dispatch.md"
    );
}

#[test]
fn the_dashboard_channel_list_leaves_out_the_unknown_channel_label() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("ops/grafana/hotline.json")).expect("dashboard is JSON");
    let vars = dash["templating"]["list"].as_array().expect("variables");
    let channel = vars
        .iter()
        .find(|v| v["name"] == "channel")
        .expect("a $channel variable");
    assert_eq!(
        channel["regex"],
        format!("/^(?!{}$).*$/", hotline::metrics::UNKNOWN_CHANNEL),
        "the $channel variable must not offer the label for unknown channels"
    );
}

/// A newcomer installs what the README says; CI installs what `.ci/run`
/// says: the same packages.
#[test]
fn the_readme_installs_every_package_ci_installs() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("`apt-get install")
        .expect("the README's install line");
    let line: String = readme[start..]
        .split('`')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let packages: Vec<&str> = ci
        .lines()
        .filter_map(|l| l.split_once("need+=(")?.1.split_once(')'))
        .map(|(p, _)| p)
        .collect();
    assert!(packages.len() >= 5, "{packages:?}");
    for p in packages {
        assert!(
            line.split(' ').any(|w| w == p),
            "README's `{line}` lacks {p}, which .ci/run installs"
        );
    }
}

#[test]
fn the_readme_names_the_texts_csv_columns_in_order() {
    let readme = read("README.md");
    let section = readme
        .split("## Translating")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Translating section");
    let mut at = 0;
    for col in hotline::cli::TEXTS_CSV_HEADER {
        let found = section[at..].find(&format!("`{col}`")).unwrap_or_else(|| {
            panic!("README Translating: column `{col}` missing or out of order")
        });
        at += found;
    }
    assert!(section.contains("texts export --format csv"));
    assert!(section.contains("texts import texts.csv --dry-run"));
}

#[test]
fn the_runbook_says_how_often_the_store_wide_gauges_are_read() {
    let runbook = read("ops/RUNBOOK.md");
    let flat = runbook.split_whitespace().collect::<Vec<_>>().join(" ");
    let secs = hotline::outbox::worker::QUEUE_GAUGES_EVERY.as_secs();
    assert!(
        flat.contains(
            "*Outbox depth* and *Oldest message in the outbox* are the store's whole outbox per channel"
        ) && flat.contains(&format!("read from the store by every instance every {secs} s")),
        "ops/RUNBOOK.md must say the outbox gauges are read every {secs} s"
    );
}

#[test]
fn the_reload_docs_name_what_the_code_does() {
    let exported = hotline::metrics::Metrics::new([], [], []).render();
    let readme = read("README.md");
    let dashboard = read("ops/grafana/hotline.json");
    let ops_names = read("ops/check_files.py");
    for metric in [
        "hotline_config_generation",
        "hotline_config_reload_total",
        "hotline_config_last_reload_timestamp_seconds",
    ] {
        assert!(
            exported.contains(&format!("# TYPE {metric} ")),
            "{metric} is exported"
        );
        assert!(readme.contains(metric), "README names {metric}");
        assert!(dashboard.contains(metric), "the dashboard shows {metric}");
        assert!(
            ops_names.contains(&format!("\"{metric}\"")),
            "ops/check_files.py knows {metric}"
        );
    }
    assert!(
        exported.contains("hotline_config_reload_total{result=\"ok\"} 0")
            && exported.contains("hotline_config_reload_total{result=\"rejected\"} 0"),
        "both results start at zero"
    );
    let unit = read("ops/systemd/hotline.service");
    assert!(
        unit.lines()
            .any(|l| l.trim() == "ExecReload=/bin/kill -HUP $MAINPID"),
        "the systemd unit reloads with SIGHUP"
    );
    let runbook = read("ops/RUNBOOK.md");
    assert!(runbook.contains("systemctl reload hotline"));
    assert!(readme.contains("`POST /reload`"));
    // The log lines and the reply README and the runbook quote are the
    // ones the code logs (src/app.rs) and answers (Report::render);
    // tests/reload.rs checks the binary logs them, each when it should.
    use hotline::reload::{
        LOG_APPLIED, LOG_NOT_RELOADED, LOG_REJECTED, LOG_RELOADED, LOG_RESTART_KEYS,
        REPLY_RESTART_KEYS,
    };
    let app = read("src/app.rs");
    for constant in [
        "LOG_APPLIED",
        "LOG_REJECTED",
        "LOG_RESTART_KEYS",
        "LOG_RELOADED",
        "LOG_NOT_RELOADED",
    ] {
        assert!(
            app.contains(&format!("crate::reload::{constant}")),
            "src/app.rs logs reload::{constant}"
        );
    }
    for line in [
        LOG_APPLIED,
        LOG_REJECTED,
        LOG_RESTART_KEYS,
        LOG_RELOADED,
        LOG_NOT_RELOADED,
    ] {
        assert!(readme.contains(line), "README.md quotes {line:?}");
        assert!(runbook.contains(line), "ops/RUNBOOK.md quotes {line:?}");
    }
    let reply = hotline::reload::Report {
        applied: true,
        generation: 2,
        problems: Vec::new(),
        restart_keys: vec!["server.per_ip_burst".to_owned()],
    }
    .render();
    let named = format!("{REPLY_RESTART_KEYS}server.per_ip_burst");
    assert!(reply.contains(&named), "{reply}");
    for doc in [&readme, &runbook] {
        assert!(
            doc.contains(&format!("`{named}`")),
            "the docs quote {named:?}"
        );
    }
    let keep = hotline::reload::KEEP_GENERATIONS;
    let flows = read("docs/flows.md");
    assert!(
        flows.contains(&format!("replaced by the last {keep} reloads")),
        "docs/flows.md says how many versions are kept"
    );
    assert!(readme.contains(&format!("the last {keep} replaced versions are kept")));
}

#[test]
fn the_dispatch_docs_list_every_outcome_code_lawyers_can_send() {
    let docs = read("docs/dispatch.md");
    let texts = hotline::dispatch::texts::LawyerTexts::parse(
        &read("config/lawyer_texts.toml"),
        "config/lawyer_texts.toml",
    )
    .expect("shipped texts load");
    let row = |id: &str| -> &str {
        docs.lines()
            .find(|l| l.starts_with(&format!("| `{id}`")))
            .unwrap_or_else(|| panic!("docs/dispatch.md has no row for outcome {id}"))
    };
    for (word, id) in texts.outcome_words() {
        assert!(
            row(id).contains(&format!("`{word}`")),
            "docs/dispatch.md: outcome {id} does not list {word}"
        );
    }
    for id in texts.outcome_ids() {
        // Every word the row names is one the texts give this outcome.
        for word in row(id).split('`').skip(3).step_by(2) {
            assert_eq!(
                texts.outcome(word),
                Some(id),
                "docs/dispatch.md: {word} in the row of {id}"
            );
        }
    }
    for band in hotline::dispatch::report::TIME_BANDS {
        assert!(
            docs.contains(&format!("`{band}`")),
            "docs/dispatch.md: {band}"
        );
    }
    assert!(docs.contains("hotline_cases_closed_total{city,outcome}"));
    let runbook = read("ops/RUNBOOK.md");
    assert!(runbook.contains("--city osh") && runbook.contains("[LANG.outcomes]"));
}

/// The allocator is built without transparent huge pages (11-12 MiB more
/// for 100,000 sessions with them, docs/performance.md), and the systemd
/// unit turns off the kernel's own on hosts that hand them out always.
#[test]
fn the_allocator_keeps_off_huge_pages_where_the_docs_say() {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("mimalloc ="))
        .expect("Cargo.toml depends on mimalloc");
    assert!(line.contains("\"no_thp\""), "{line}");
    let unit = read("ops/systemd/hotline.service");
    assert!(
        unit.lines()
            .any(|l| l.trim() == "Environment=MIMALLOC_ALLOW_THP=0"),
        "the systemd unit sets MIMALLOC_ALLOW_THP=0"
    );
    let perf = read("docs/performance.md");
    assert!(perf.contains("`no_thp`") && perf.contains("MIMALLOC_ALLOW_THP=0"));
}

/// `ops/check_files.py` rejects dashboard and alert queries on metrics it
/// does not know: it must know every metric the gateway exports (a
/// histogram by its `_bucket` series), and only those.
#[test]
fn the_ops_checker_knows_every_exported_metric() {
    let m = hotline::metrics::Metrics::new(["africastalking"], ["legal_help"], ["bishkek"]);
    // Series made only as things happen.
    m.zero_outcomes(&["bishkek"], &["not_given"]);
    m.channel_up.with_label_values(&["africastalking"]).set(1);
    m.channel_failures
        .with_label_values(&["africastalking", "refused"])
        .inc();
    m.oncall_gap_seconds
        .with_label_values(&["bishkek"])
        .set(0.0);
    let exported: std::collections::BTreeSet<String> = m
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| match kind {
            "histogram" => format!("{name}_bucket"),
            _ => name.to_owned(),
        })
        .collect();
    let checker = read("ops/check_files.py");
    let list = checker
        .split("METRICS = {")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .expect("ops/check_files.py has METRICS = {…}");
    let known: std::collections::BTreeSet<String> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|n| *n != "up")
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = exported.difference(&known).collect();
    let extra: Vec<_> = known.difference(&exported).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ops/check_files.py METRICS: missing {missing:?}, not exported {extra:?}"
    );
}

/// What the README and the runbook say about refused requests: how often
/// they are logged, and the metric for those refused before a channel is
/// known, with its reasons.
#[test]
fn the_docs_say_how_refusals_are_logged_and_counted() {
    let secs = hotline::server::log_limit::LOG_EVERY.as_secs();
    let exported = hotline::metrics::Metrics::new([], [], []).render();
    for file in ["README.md", "ops/RUNBOOK.md"] {
        let flat = read(file).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&format!("once per channel and reason every {secs} s"))
                || flat.contains(&format!("line per channel and reason every {secs} s"))
                || flat.contains(&format!("one per channel and reason every {secs} s")),
            "{file} says refusals are logged once per channel and reason every {secs} s"
        );
        assert!(flat.contains("suppressed"), "{file} names `suppressed`");
        assert!(flat.contains("hotline_connections_refused_total"), "{file}");
    }
    let readme = read("README.md");
    for reason in hotline::metrics::CONNECTION_REFUSALS {
        assert!(
            exported.contains(&format!(
                "hotline_connections_refused_total{{reason=\"{reason}\"}} 0"
            )),
            "{reason} starts at zero"
        );
        assert!(
            readme.contains(&format!("`{reason}`")),
            "README names {reason}"
        );
    }
}

/// The backticked two-letter language codes in the row of `table_key` of
/// docs/roster.md's tables.
fn roster_doc_languages(doc: &str, table_key: &str) -> Vec<String> {
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| `{table_key}` |")))
        .unwrap_or_else(|| panic!("docs/roster.md has a `{table_key}` row"));
    row.split('`')
        .skip(3) // before the key, the key, between the key and its meaning
        .step_by(2)
        .filter(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_lowercase()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_roster_docs_list_the_languages_of_the_lawyers_texts() {
    let texts = hotline::dispatch::texts::LawyerTexts::parse(
        &read("config/lawyer_texts.toml"),
        "config/lawyer_texts.toml",
    )
    .unwrap();
    let have: std::collections::BTreeSet<String> = texts.languages().map(str::to_owned).collect();
    let doc = read("docs/roster.md");
    for key in ["languages", "names"] {
        // A set: `en` is named again as the fallback.
        let listed: std::collections::BTreeSet<String> =
            roster_doc_languages(&doc, key).into_iter().collect();
        assert_eq!(
            listed, have,
            "docs/roster.md's `{key}` row lists the languages of config/lawyer_texts.toml"
        );
    }
}

/// The rows of the table under `heading` in `doc`: each row's first
/// column, without its code span's backticks.
fn first_column(doc: &str, heading: &str) -> Vec<String> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|l| {
            let cell = l[1..].split(" | ").next().unwrap().trim();
            cell.strip_prefix("`` ")
                .and_then(|c| c.strip_suffix(" ``"))
                .unwrap_or_else(|| cell.trim_matches('`'))
                .to_owned()
        })
        .collect()
}

/// The literal pieces of a documented message (after its key): split at
/// the placeholders (`…`, a lone capital such as `X`, `N`, `V`, `L`) and at
/// `: ` (where the code joins the parts of a message), trimmed.
fn literal_pieces(documented: &str) -> Vec<String> {
    // The key ends at the first `: ` outside quotes.
    let mut in_quotes = false;
    let mut cut = None;
    let b = documented.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b'"' => in_quotes = !in_quotes,
            b':' if !in_quotes && b.get(i + 1) == Some(&b' ') => {
                cut = Some(i + 2);
                break;
            }
            _ => {}
        }
    }
    let message = &documented[cut.unwrap_or_else(|| panic!("no key in {documented:?}"))..];
    let chars: Vec<char> = message.chars().collect();
    let mut pieces = vec![String::new()];
    for (i, &c) in chars.iter().enumerate() {
        let alone = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_none_or(|c| !c.is_alphanumeric())
        };
        let placeholder =
            c == '…' || (c.is_ascii_uppercase() && alone(i.checked_sub(1)) && alone(Some(i + 1)));
        if placeholder || (c == ':' && chars.get(i + 1) == Some(&' ')) {
            pieces.push(String::new());
        } else {
            pieces.last_mut().unwrap().push(c);
        }
    }
    pieces
        .iter()
        .map(|p| p.trim_matches(|c: char| c.is_whitespace() || "\"=:,".contains(c)))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every `.rs` file under `dir`, read.
fn sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_message_the_roster_docs_list_is_one_hotline_check_prints() {
    let doc = read("docs/roster.md");
    let rows = first_column(&doc, "## Messages from `hotline check`");
    assert!(rows.len() >= 15, "{rows:#?}");
    let mut src = String::new();
    sources(&root().join("src"), &mut src);
    for row in &rows {
        for piece in literal_pieces(row) {
            assert!(
                src.contains(&piece),
                "docs/roster.md lists {row:?}, but no message in src/ has {piece:?}"
            );
        }
    }

    // A number in national form, in the phones file and in a variable: the
    // messages `check` prints for them are in the table.
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.toml");
    std::fs::write(
        &roster,
        read("config/demo-roster.toml").replacen(
            "[lawyers.demo-marta]\n",
            "[lawyers.demo-marta]\nphone_env = \"MARTA_PHONE\"\n",
            1,
        ),
    )
    .unwrap();
    let phones = read("config/demo-roster.phones.toml");
    let olena = phones
        .lines()
        .find(|l| l.starts_with("demo-olena"))
        .expect("Olena's number");
    std::fs::write(
        dir.path().join("demo-roster.phones.toml"),
        phones.replacen(olena, "demo-olena = \"0501234567\"", 1),
    )
    .unwrap();
    let env: BTreeMap<&str, &str> = [("MARTA_PHONE", "0501234568")].into();
    let problems = hotline::dispatch::roster::load(&roster, &env).unwrap_err();
    let errors = problems.iter().filter(|p| p.is_error()).count();
    assert_eq!(errors, 2, "{problems:#?}");
    // (With real numbers in it, the phones file is asked to be chmod 600.)
    for e in problems {
        let shown = e.to_string();
        assert!(
            rows.iter().any(|row| {
                let mut rest = shown.as_str();
                literal_pieces(row)
                    .iter()
                    .all(|p| match rest.find(p.as_str()) {
                        Some(i) => {
                            rest = &rest[i + p.len()..];
                            true
                        }
                        None => false,
                    })
            }),
            "`hotline check` prints {shown:?}; docs/roster.md's table has no row for it"
        );
    }
}

#[test]
fn the_draining_alert_gives_the_shutdown_time_of_the_shipped_configs() {
    // (drain, the whole shutdown): the drain, the grace for requests in
    // flight, and 1 s for the admin listener.
    let seconds = |path: &str| {
        let t: toml::Table = toml::from_str(&read(path)).unwrap();
        let server = t["server"].as_table().unwrap();
        let drain = server["drain_delay_secs"].as_integer().unwrap();
        let grace = server["shutdown_grace_secs"].as_integer().unwrap();
        (drain, drain + grace + 1)
    };
    let (_, shipped) = seconds("config/hotline.toml");
    let (drain, production) = seconds("config/production.example.toml");
    let expected = format!(
        "about {shipped} s with config/hotline.toml, {production} s with the {drain} s drain of config/production.example.toml"
    );
    for file in [
        "ops/prometheus/alerts.yml",
        "ops/prometheus/alerts_test.yml",
    ] {
        assert!(
            read(file).contains(&expected),
            "{file}: HotlineDrainingTooLong says {expected:?}"
        );
    }
    let runbook = read("ops/RUNBOOK.md");
    assert!(runbook.contains(&format!("shutdown normally takes under {production} s")));
    assert!(runbook.contains(&format!("about {shipped} s with `config/hotline.toml`")));
}

/// The service reads the phones file as its own user: the unit runs as a
/// static system user the install makes, the install gives the phones
/// file to that user, and the runbook says the same owner and checks the
/// configuration as that user (a root-only file would stop `hotline
/// serve` with exit 64, which systemd does not restart, while a check as
/// root passes).
#[test]
fn the_phones_file_belongs_to_the_user_the_unit_runs_as() {
    let unit = read("ops/systemd/hotline.service");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("the unit sets {key}="))
            .trim()
            .to_string()
    };
    let user = setting("User");
    assert_eq!(user, "hotline");
    assert_eq!(setting("Group"), user);
    assert_eq!(setting("RestartPreventExitStatus"), "64");
    // DynamicUser= uses a static user of that name when one exists: the
    // install must make it, or no file could be given to the service.
    assert!(
        unit.contains(&format!("--shell /usr/sbin/nologin {user}"))
            && unit.contains("useradd --system"),
        "the install makes the static user {user}"
    );
    let phones = "/etc/hotline/roster.phones.toml";
    let install = unit
        .lines()
        .find(|l| l.contains("install ") && l.contains(phones))
        .expect("the install makes the phones file");
    assert!(
        install.contains(&format!("-o {user} -g {user}")) && install.contains("-m 0600"),
        "{install}"
    );
    // Its own check line runs as the service user.
    let as_user = format!("setpriv --reuid={user} --regid={user} --init-groups");
    assert!(unit.contains(&format!("{as_user} hotline check")));

    let runbook = read("ops/RUNBOOK.md");
    assert!(
        !runbook.contains("owner root"),
        "the runbook still says owner root"
    );
    assert!(runbook.contains(&format!(
        "`/etc/hotline/roster.phones.toml` (mode 600, owner `{user}:{user}`"
    )));
    let hcheck = runbook
        .lines()
        .find(|l| l.starts_with("hcheck() {"))
        .expect("the runbook defines hcheck");
    assert!(hcheck.contains(&as_user), "{hcheck}");
    for doc in ["config/roster.phones.example.toml", "docs/roster.md"] {
        assert!(
            read(doc).contains(&format!("chown {user}:{user}")),
            "{doc} says who owns the phones file"
        );
    }
}

/// A deploy is confirmed by the commit: `hotline --version` and
/// `hotline_build_info` name the one the binary was built from (build.rs),
/// the runbook's deploy and rollback read it, and a rollback keeps
/// `hotline.prev` for another.
#[test]
fn the_version_and_build_info_name_the_commit_the_runbook_checks() {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let commit = hotline::COMMIT;
    match &head {
        Some(h) => assert_eq!(commit, h, "built from this checkout"),
        None => assert_eq!(commit, "unknown"),
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--version")
        .output()
        .expect("hotline --version runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("hotline {} ({commit})", env!("CARGO_PKG_VERSION"))
    );
    let m = hotline::metrics::Metrics::new(["africastalking"], ["legal_help"], ["bishkek"]);
    let exported = m.render();
    let line = format!(
        "hotline_build_info{{commit=\"{commit}\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(exported.contains(&line), "{line} in {exported}");

    let runbook = read("ops/RUNBOOK.md");
    let deploy = &runbook[runbook.find("### Deploy and rollback").unwrap()..];
    let deploy = &deploy[..deploy.find("\n### ").unwrap()];
    assert!(deploy.contains("/tmp/hotline-new --version"));
    assert!(deploy.contains("/usr/local/bin/hotline.prev --version"));
    assert!(deploy.contains("commit=\""));
    assert!(
        !deploy.contains("mv /usr/local/bin/hotline.prev"),
        "a rollback must keep hotline.prev"
    );
    assert!(deploy.contains("cp -p /usr/local/bin/hotline.prev"));
    let dashboard = read("ops/grafana/hotline.json");
    assert!(dashboard.contains("unless on (instance, version, commit)"));
}

/// A restart during a store outage leaves the new instance without outage
/// codes (the women completing the menu get the fallback number): the
/// runbook says not to, where an operator would restart.
#[test]
fn the_runbook_says_not_to_restart_while_the_store_is_down() {
    let runbook = read("ops/RUNBOOK.md");
    let section = |name: &str| {
        let s = &runbook[runbook
            .find(&format!("### {name}\n"))
            .unwrap_or_else(|| panic!("{name}"))..];
        let end = s[4..].find("\n### ").map_or(s.len(), |i| i + 4);
        s[..end].to_owned()
    };
    assert!(!runbook.contains("is always safe"));
    for name in [
        "Restarting safely",
        "HotlineStoreDown",
        "HotlineInstanceDown",
    ] {
        let s = section(name);
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("fallback number instead of a code")
                || flat.contains("received without a code")
                || flat.contains("shown no code"),
            "{name} says why not to restart during an outage"
        );
        assert!(
            s.contains("Restarting safely") || name == "Restarting safely",
            "{name}"
        );
    }
    let worker = read("src/worker.rs");
    assert!(worker.contains("outage codes not given back"));
    assert!(section("Restarting safely").contains("outage codes not given\nback"));
}

/// The smsbox retry settings docs/channels.md recommends are the ones the
/// tested Kannel configuration runs with, and the docs say which log
/// settings keep numbers and texts out of Kannel's own logs while the test
/// template says it is for tests only.
#[test]
fn the_kannel_docs_and_the_tested_kannel_config_agree() {
    let doc = read("docs/channels.md");
    let tmpl = read("tests/kannel/kannel.conf.tmpl");
    let kannel = &doc[doc.find("## Kannel").unwrap()..doc.find("## Infobip").unwrap()];
    for setting in ["http-request-retry", "http-queue-delay"] {
        let value = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix(setting))
                .filter_map(|rest| rest.trim().strip_prefix('='))
                .map(|v| v.trim().to_owned())
                .collect()
        };
        let (documented, tested) = (value(kannel), value(&tmpl));
        assert_eq!(documented.len(), 1, "{setting} in docs/channels.md");
        assert_eq!(documented, tested, "{setting}: docs and tests/kannel");
    }
    // The sendsms-user's settings without which Kannel cuts every SMS to
    // one part (an offer without the number to call): documented as the
    // tested config has them, and in the shipped config's comment.
    let group = |text: &str| -> String {
        let at = text
            .find("group = sendsms-user")
            .expect("a sendsms-user group");
        text[at..]
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty() && !l.trim().starts_with("```"))
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter(|l| l.contains("max-messages") || l.contains("concatenation"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert_eq!(group(kannel), "max-messages = 10; concatenation = true");
    assert_eq!(group(kannel), group(&tmpl), "docs and tests/kannel");
    let shipped = read("config/hotline.toml");
    for line in ["#   max-messages = 10", "#   concatenation = true"] {
        assert!(shipped.contains(line), "config/hotline.toml: {line}");
    }
    for advice in [
        "`log-level = 2` (warnings) or higher",
        "no `access-log`",
        "`dlr-storage = internal`",
    ] {
        assert!(kannel.contains(advice), "docs/channels.md: {advice}");
    }
    assert!(
        tmpl.contains("TESTS ONLY: log-level = 0"),
        "the template warns"
    );
    assert!(
        read("docs/security.md").contains("## Aggregators and Kannel"),
        "docs/security.md has the section docs/channels.md links to"
    );
}

/// The README's default log filter is the binary's.
#[test]
fn the_readme_names_the_default_log_filter() {
    let readme = read("README.md");
    let row = format!(
        "| `RUST_LOG` | log level filter | `{}`",
        hotline::cli::DEFAULT_LOG_FILTER
    );
    assert!(readme.contains(&row), "README.md: {row}");
}
