//! The `hotline` binary's commands, run as a user would run them.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn hotline(args: &[&str]) -> std::process::Output {
    Command::new(common::binary())
        .args(args)
        .current_dir(common::root())
        .env_remove("HOTLINE_CONFIG")
        .env_remove("HOTLINE_REDIS_URL")
        .env_remove("HOTLINE_LISTEN")
        .env_remove("HOTLINE_ADMIN_LISTEN")
        .output()
        .expect("binary runs")
}

#[test]
fn check_passes_on_the_shipped_config() {
    let out = hotline(&["check", "--screens"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no problems found"));
    assert!(
        stdout.contains(r#"flows/legal_help.toml: flow "legal_help", 5 languages"#),
        "{stdout}"
    );
    // Every screen is listed with its length, limit, encoding and SMS parts.
    assert!(
        stdout.contains("nodes.city.ru [country KG]: 41/80 UCS-2 · SMS 1 part(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("nodes.city.en [country other]: "),
        "{stdout}"
    );
}

/// `load-tests/run.sh` and `load-tests/profile.sh` start the gateway on this
/// config: it must stay valid as `hotline check` grows stricter (it once
/// did not, and the load tests could not start).
#[test]
fn check_passes_on_the_load_test_config() {
    let out = hotline(&["check", "--config", "load-tests/hotline.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no problems found"), "{stdout}");
    // Each scenario's variant of it, written by the script itself (`mixed`
    // adds dispatch and a channel with credentials: stricter checks).
    let bin_dir = common::binary().parent().unwrap().to_path_buf();
    let out = Command::new("bash")
        .args(["load-tests/run.sh", "configs"])
        .current_dir(common::root())
        .env("LT_BIN", &bin_dir)
        .env_remove("HOTLINE_REDIS_URL")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for kind in ["base", "flood", "mixed"] {
        assert!(
            stdout.contains(&format!("config {kind}: valid")),
            "{stdout}"
        );
    }
}

/// The scenarios `load-tests/run.sh all` runs are the ones its usage line,
/// the README and docs/performance.md's table name: a scenario added to one
/// and not the others is a doc that lies (`cpu` once was missing).
#[test]
fn the_load_test_scenarios_are_documented_where_they_are_run() {
    let script = std::fs::read_to_string(common::root().join("load-tests/run.sh")).unwrap();
    let all: Vec<&str> = script
        .lines()
        .find_map(|l| l.strip_prefix(r#"[ "${scenarios[0]}" = all ] && scenarios=("#))
        .and_then(|l| l.strip_suffix(')'))
        .expect("run.sh expands `all`")
        .split(' ')
        .collect();
    assert!(all.len() >= 7, "{all:?}");
    let usage = format!("load-tests/run.sh [{}|all]", all.join("|"));
    assert!(script.contains(&usage), "run.sh's usage line: {usage}");
    let accepted = format!("case $s in {}|configs)", all.join("|"));
    assert!(script.contains(&accepted), "run.sh accepts: {accepted}");
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    assert!(readme.contains(&format!("`{usage}`")), "README: {usage}");
    let perf = std::fs::read_to_string(common::root().join("docs/performance.md")).unwrap();
    let rows: Vec<&str> = perf
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    for s in &all {
        assert!(rows.contains(s), "docs/performance.md has no row for `{s}`");
        assert!(
            script.contains(&format!("\n{s}() {{")),
            "run.sh defines {s}()"
        );
    }
}

#[test]
fn check_names_each_problem_in_broken_fixtures() {
    let out = hotline(&["check", "--config", "tests/fixtures/broken/hotline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let dir = "tests/fixtures/broken/flows";
    for expected in [
        format!(r#"error: {dir}/a_next.toml: nodes.city.options[2].next = "sity": no such node"#),
        format!(
            r#"error: {dir}/b_unreachable.toml: nodes.forgotten: unreachable from start = "city""#
        ),
        format!(
            r#"error: {dir}/c_duplicate_keys.toml: nodes.city.options[1].key = "1": duplicate key (also nodes.city.options[0])"#
        ),
        format!(
            "error: {dir}/d_empty_menu.toml: nodes.city.options: a menu needs at least one option"
        ),
        format!(
            r#"warning: {dir}/e_translation.toml: nodes.city.text: missing translation "en" (falls back to "ru")"#
        ),
        format!(
            "error: {dir}/f_too_long.toml: nodes.city.ru: screen for country * is 90 characters in UCS-2, over the USSD limit of 80"
        ),
        format!(
            r#"warning: {dir}/g_names_police.toml: nodes.city.text.ru: names "полиц" on a discreet screen"#
        ),
        format!(
            "error: {dir}/h_never_ends.toml: nodes.city: no path from this node ever reaches an end node"
        ),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing: {expected}\n--- got:\n{stderr}"
        );
    }
}

#[test]
fn check_exits_2_when_the_config_cannot_be_read() {
    let out = hotline(&["check", "--config", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.toml: cannot read"));
}

#[test]
fn serve_refuses_a_bad_config_with_exit_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        common::default_config()
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"nonsense\"")
            .replace(
                "dir = \"../flows\"",
                &format!("dir = {:?}", common::root().join("flows")),
            )
            .replace("kind = \"africastalking\"", "kind = \"carrier-pigeon\""),
    )
    .unwrap();
    let out = hotline(&["serve", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(r#"server.listen = "nonsense": not an address like 127.0.0.1:8080"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"channels[0].kind = "carrier-pigeon": unknown kind"#),
        "{stderr}"
    );
}

/// A bad `HOTLINE_LOG_FORMAT` is blamed on the environment, not on the
/// file (which says "text").
#[test]
fn a_bad_log_format_in_the_environment_is_blamed_on_the_environment() {
    let out = Command::new(common::binary())
        .args(["check"])
        .current_dir(common::root())
        .env_remove("HOTLINE_CONFIG")
        .env("HOTLINE_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(
            r#"environment: HOTLINE_LOG_FORMAT="yaml": is not valid: must be "text" or "json""#
        ),
        "{all}"
    );
    assert!(!all.contains("server.log_format"), "{all}");
}

/// `test-sms` says what the operator must fix (no roster, no such lawyer:
/// 64) before it tries the gateway; an unreachable gateway is 69, said once.
#[test]
fn test_sms_checks_the_config_and_the_lawyer_before_the_gateway() {
    // Port 1 on loopback: nothing listens, the gateway is "down".
    let down = "http://127.0.0.1:1";
    let run = |args: &[&str]| {
        let out = Command::new(common::binary())
            .args(args)
            .current_dir(common::root())
            .env_remove("HOTLINE_CONFIG")
            .env_remove("HOTLINE_REDIS_URL")
            .env_remove("HOTLINE_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stderr) = run(&["test-sms", "nobody", "--admin", down]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(r#"no lawyer "nobody" in config/demo-roster.toml"#),
        "{stderr}"
    );
    assert!(
        !stderr.contains("127.0.0.1:1"),
        "the gateway is not asked: {stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[dispatch]\n").unwrap();
    let end = start + text[start..].find("auto_close_days = 7\n").unwrap() + 20;
    let text = format!("{}{}", &text[..start], &text[end..]).replace(
        "# cases_handled_elsewhere = false",
        "cases_handled_elsewhere = true",
    );
    std::fs::write(&config, text).unwrap();
    let path = config.display().to_string();
    let (code, stderr) = run(&["test-sms", "demo-aigul", "--config", &path, "--admin", down]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("has no [dispatch]"), "{stderr}");
    assert!(
        !stderr.contains("127.0.0.1:1"),
        "the gateway is not asked: {stderr}"
    );

    let (code, stderr) = run(&["test-sms", "demo-aigul", "--admin", down]);
    assert_eq!(code, Some(69), "{stderr}");
    assert_eq!(
        stderr.matches("127.0.0.1:1").count(),
        1,
        "said once: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A production configuration whose lawyers are still on the demo roster's
/// fictional numbers, or on the example phones file's numbers (copied as
/// docs/roster.md says, not edited): `check` fails, `serve` refuses.
#[test]
fn production_refuses_demo_and_example_lawyer_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let cfg = dir.path().join("config");
    for f in ["roster.toml", "roster.phones.example.toml"] {
        std::fs::copy(common::root().join("config").join(f), cfg.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("# require_pii_key = false", "require_pii_key = true")
        .replace("+996 000 000 000", "+996 312 000 111")
        .replace("+380 000 000 000", "+380 53 200 0111")
        .replace(
            "name = \"console\"\nkind = \"console\"",
            "name = \"console\"\nkind = \"console\"\nenabled = false",
        )
        .replace(
            "sms_channel = \"console\"",
            "sms_channel = \"africastalking\"",
        )
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            "secret_env = \"HOTLINE_AT_SECRET\"",
        )
        .replace("# username = \"sandbox\"", "username = \"hotline\"")
        .replace(
            "# api_key_env = \"HOTLINE_AT_API_KEY\"",
            "api_key_env = \"HOTLINE_AT_API_KEY\"",
        );
    std::fs::write(&config, &text).unwrap();
    let path = config.display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(common::binary())
            .args(args)
            .current_dir(common::root())
            .env_remove("HOTLINE_CONFIG")
            .env_remove("HOTLINE_REDIS_URL")
            .env("HOTLINE_LISTEN", "127.0.0.1:0")
            .env("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0")
            .env(
                "HOTLINE_PII_KEY",
                "pii-key-0123456789-0123456789-0123456789",
            )
            .env("HOTLINE_AT_SECRET", "s-0123456789abcdef")
            .env("HOTLINE_AT_API_KEY", "k")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), all)
    };

    // The demo roster: fictional numbers.
    let (code, all) = run(&["check", "--config", &path]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("demo-roster.toml: lawyers.demo-bermet: her number is in a fictional range no phone answers (a demo roster's), in a production configuration (privacy.require_pii_key = true)"),
        "{all}"
    );
    assert!(!all.contains("7700"), "no number in a problem: {all}");
    let (code, all) = run(&["serve", "--config", &path]);
    assert_eq!(code, Some(64), "{all}");
    assert!(
        all.contains("lawyers.demo-kanykei: her number is in a fictional range"),
        "{all}"
    );

    // The real roster, its phones file copied from the example unedited.
    std::fs::copy(
        cfg.join("roster.phones.example.toml"),
        cfg.join("roster.phones.toml"),
    )
    .unwrap();
    std::fs::write(
        &config,
        text.replace("roster = \"demo-roster.toml\"", "roster = \"roster.toml\""),
    )
    .unwrap();
    let (code, all) = run(&["check", "--config", &path]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("roster.toml: lawyers.aida: her number is still the example number from roster.phones.example.toml"),
        "{all}"
    );
    assert!(!all.contains("000 011") && !all.contains("000011"), "{all}");
    let (code, all) = run(&["serve", "--config", &path]);
    assert_eq!(code, Some(64), "{all}");
    assert!(
        all.contains("lawyers.nurgul: her number is still the example number"),
        "{all}"
    );
}

#[test]
fn serve_refuses_a_bad_environment_override_and_a_broken_flow() {
    let out = Command::new(common::binary())
        .args(["serve"])
        .current_dir(common::root())
        .env("HOTLINE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(r#"environment: HOTLINE_LISTEN="not-an-address": is not valid"#),
        "{stderr}"
    );

    let out = Command::new(common::binary())
        .args(["serve", "--config", "tests/fixtures/broken/hotline.toml"])
        .current_dir(common::root())
        .env("HOTLINE_LISTEN", "127.0.0.1:0")
        .env("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(r#"nodes.city.options[2].next = "sity": no such node"#),
        "{stderr}"
    );
}

#[test]
fn simulate_walks_the_menu_in_the_terminal() {
    let mut child = Command::new(common::binary())
        .args(["simulate", "--number", "+996555000111"])
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("4\n2\n1\nMain square\n0\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("── screen 1 · CON · 63/80 characters · UCS-2 · fits ──"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Which city?\n1 Bishkek\n2 Osh\n3 Other city"),
        "{stdout}"
    );
    assert!(stdout.contains("── screen 6 · END"), "{stdout}");
    assert!(stdout.contains("Thank you. Your code is "), "{stdout}");
    assert!(stdout.contains("── session over ──"));
}

#[test]
fn check_reports_roster_problems_and_every_uncovered_stretch_of_the_next_14_days() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    std::fs::write(
        dir.path().join("roster.toml"),
        r#"
[cities.bishkek]
names = { en = "Bishkek" }
time_zone = "Asia/Bishkek"
country = "KG"
coordinator = "nurgul"
team = ["aida"]
[cities.bishkek.escalation]
levels = [ { kind = "on_call", wait_minutes = 3 }, { kind = "coordinator", wait_minutes = 5 } ]
repeats = 0
unanswered_after_minutes = 15
[cities.osh]
names = { en = "Osh" }
route_to = "bishkek"
route_by_country = { KG = "bishkek", UA = "bishkek" }
[cities.poltava]
names = { en = "Poltava" }
route_to = "bishkek"
route_by_country = { KG = "bishkek", UA = "bishkek" }
[cities.other]
names = { en = "Other" }
route_to = "bishkek"
route_by_country = { KG = "bishkek", UA = "bishkek" }
[lawyers.nurgul]
name = "Nurgul"
languages = ["ru"]
cities = ["bishkek"]
phone_env = "T_NURGUL"
[lawyers.aida]
name = "Aida"
languages = ["ky"]
cities = ["bishkek"]
phone_env = "T_AIDA"
# Days only: every night is uncovered.
[[rotations]]
city = "bishkek"
start = "2026-01-01"
daily = "08:00-20:00"
lawyers = ["aida"]
"#,
    )
    .unwrap();
    let cfg = common::default_config()
        .replace(
            "dir = \"../flows\"",
            &format!("dir = {:?}", root.join("flows").display().to_string()),
        )
        .replace(
            "[dispatch]\nroster = \"demo-roster.toml\"\ntexts = \"lawyer_texts.toml\"",
            &format!(
                "[dispatch]\nroster = \"roster.toml\"\ntexts = {:?}",
                root.join("config/lawyer_texts.toml").display().to_string()
            ),
        );
    assert!(
        cfg.contains("[dispatch]\nroster = \"roster.toml\""),
        "the default config turns [dispatch] on"
    );
    std::fs::write(dir.path().join("hotline.toml"), &cfg).unwrap();
    let out = Command::new(common::binary())
        .args([
            "check",
            "--config",
            dir.path().join("hotline.toml").to_str().unwrap(),
        ])
        .env("T_NURGUL", "+996555000100")
        .env("T_AIDA", "+996555000101")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Gaps are warnings: exit 3, told apart from errors (1).
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("warning(s), no errors"), "{stdout}");
    assert!(
        stdout.contains("2 lawyers, cities bishkek, osh, other, poltava"),
        "{stdout}"
    );
    let gaps: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cities.bishkek: nobody on call from"))
        .collect();
    assert!(
        (13..=15).contains(&gaps.len()),
        "one gap per night for 14 days: {stderr}"
    );
    // Whole nights, except where the 14-day window starts or ends mid-night.
    let inner = &gaps[1..gaps.len() - 1];
    assert!(
        inner
            .iter()
            .all(|g| g.contains(" 20:00 to ") && g.ends_with(" 08:00 (local time)")),
        "{gaps:?}"
    );
    assert!(
        !stderr.contains("555000"),
        "no lawyer's number in any problem"
    );
    // Without the phone variables, each missing number is named by key.
    let out = Command::new(common::binary())
        .args([
            "check",
            "--config",
            dir.path().join("hotline.toml").to_str().unwrap(),
        ])
        .env_remove("T_NURGUL")
        .env_remove("T_AIDA")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("lawyers.aida") && stderr.contains("T_AIDA"),
        "{stderr}"
    );

    // Known gaps, acknowledged in the roster with a reason, no longer fail
    // the gate.
    let roster = std::fs::read_to_string(dir.path().join("roster.toml")).unwrap();
    std::fs::write(
        dir.path().join("roster.toml"),
        format!(
            "{roster}\n[[acknowledged_gaps]]\ncity = \"bishkek\"\nfrom = \"2026-01-01 00:00\"\nto = \"2036-01-01 00:00\"\nreason = \"nights are covered by the national hotline\"\n"
        ),
    )
    .unwrap();
    let check = |cfg: &str| {
        std::fs::write(dir.path().join("hotline.toml"), cfg).unwrap();
        let out = Command::new(common::binary())
            .args([
                "check",
                "--config",
                dir.path().join("hotline.toml").to_str().unwrap(),
            ])
            .env("T_NURGUL", "+996555000100")
            .env("T_AIDA", "+996555000101")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = check(&cfg);
    assert_eq!(code, Some(3), "one other warning: {stdout}\n{stderr}");
    assert!(!stderr.contains("nobody on call"), "{stderr}");
    assert!(
        stdout.contains(
            "acknowledged gap in bishkek from 2026-01-01 00:00 to 2036-01-01 00:00 (local time)"
        ) && stdout.contains("nights are covered by the national hotline"),
        "{stdout}"
    );
    // Dispatch on a channel that cannot send: an error, exit 1.
    let (code, stdout, stderr) = check(&cfg.replace(
        "sms_channel = \"console\"",
        "sms_channel = \"africastalking\"",
    ));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(r#"error: "#)
            && stderr.contains(
                r#"dispatch.sms_channel = "africastalking": this channel cannot send SMS"#
            ),
        "{stderr}"
    );
}

#[test]
fn report_refuses_the_memory_store_with_exit_64_instead_of_printing_empty_tables() {
    let out = hotline(&["report"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "no tables: {stdout}");
    assert!(
        stderr.contains("cannot report on the memory store")
            && stderr.contains("HOTLINE_REDIS_URL"),
        "{stderr}"
    );
    // `--help` says so.
    let help = hotline(&["report", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("64") && help.contains("memory store"),
        "{help}"
    );
}

/// Run the binary with a config written to a temporary folder and extra
/// environment; (exit code, stdout, stderr).
fn run_with(args: &[&str], cfg: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new(common::binary());
    cmd.args(args)
        .arg("--config")
        .arg(&path)
        .current_dir(common::root())
        .env_remove("HOTLINE_CONFIG")
        .env_remove("HOTLINE_REDIS_URL")
        .env("HOTLINE_LISTEN", "127.0.0.1:0")
        .env("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The default config, its relative paths made absolute (for a copy
/// elsewhere).
fn default_config_anywhere() -> String {
    let root = common::root();
    let abs = |p: &str| format!("{:?}", root.join(p).display().to_string());
    common::default_config()
        .replace("dir = \"../flows\"", &format!("dir = {}", abs("flows")))
        .replace(
            "roster = \"demo-roster.toml\"",
            &format!("roster = {}", abs("config/demo-roster.toml")),
        )
        .replace(
            "texts = \"lawyer_texts.toml\"",
            &format!("texts = {}", abs("config/lawyer_texts.toml")),
        )
}

const PII_KEY: (&str, &str) = ("HOTLINE_PII_KEY", "cli-test-key-0123456789abcdef0123456789");

#[test]
fn check_says_the_default_is_a_development_configuration_and_lists_her_sms() {
    let out = hotline(&["check", "--screens"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("development configuration"), "{stdout}");
    assert!(
        stdout.contains(r#"offers go out on channel "console""#),
        "{stdout}"
    );
    // Each SMS is labelled by the countries whose callers get that very
    // text (`*` all of them, `other` those the flow does not name), as the
    // screens are; a country not offered a language is not listed for it.
    for line in [
        "flows/legal_help.toml: SMS messages.confirm.ru [country *]: 43 UCS-2 · SMS 1 part(s)",
        "SMS messages.unanswered.en [country UA]: ",
        "SMS messages.unanswered.en [country KG, other]: ",
        "SMS messages.sms_help.ky [country KG, other]: ",
        "SMS messages.confirm.uk [country UA, other]: ",
        "  messages.unavailable.ru [country KG, other]: ",
        "config/lawyer_texts.toml: lawyer text ru.offer: ",
        "config/lawyer_texts.toml: lawyer text en.accepted: ",
    ] {
        assert!(stdout.contains(line), "missing {line}\n{stdout}");
    }
    // UA callers are offered uk, ru and en: never ky or uz.
    for lang in ["ky", "uz"] {
        for l in stdout.lines().filter(|l| l.contains(&format!(".{lang} ["))) {
            let label = l.split("[country ").nth(1).unwrap_or("");
            let label = label.split(']').next().unwrap_or("");
            assert!(!label.contains("UA"), "{l}");
        }
    }
}

#[test]
fn check_fails_a_copy_of_the_production_example_on_its_placeholders() {
    let cfg =
        std::fs::read_to_string(common::root().join("config/production.example.toml")).unwrap();
    let (code, stdout, stderr) = run_with(
        &["check"],
        &cfg,
        &[
            PII_KEY,
            ("HOTLINE_REDIS_URL", "redis://127.0.0.1:1/"),
            ("HOTLINE_AT_SECRET", "s"),
            ("HOTLINE_AT_API_KEY", "k"),
        ],
    );
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(r#"flows.fallback_phone = "+996 000 000 000": a placeholder ("000 000 000") in a production configuration (privacy.require_pii_key = true)"#),
        "{stderr}"
    );
    // Without its variables, each problem is said once, and nothing said
    // contradicts it (newcomer audit): the API key's variable is unset,
    // not "needs both"; Redis is asked for without its URL, not "the
    // embedded store".
    let (code, stdout, stderr) = run_with(&["check"], &cfg, &[PII_KEY, ("HOTLINE_AT_SECRET", "s")]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("environment variable HOTLINE_AT_API_KEY is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("sending needs both"), "{stderr}");
    assert!(
        stderr.contains(r#"store.kind = "redis": set HOTLINE_REDIS_URL to the Redis URL"#),
        "{stderr}"
    );
    assert!(!stderr.contains(r#"store.kind = "memory""#), "{stderr}");
}

#[test]
fn serve_refuses_the_console_channel_in_a_production_configuration() {
    let cfg = default_config_anywhere()
        .replace("# require_pii_key = false", "require_pii_key = true")
        .replace("+996 000 000 000", "+996 312 123 456")
        .replace("+380 000 000 000", "+380 53 200 0111");
    let (code, _, stderr) = run_with(&["serve"], &cfg, &[PII_KEY]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(r#"channels[name = "console"].kind = "console": the console channel is a development sink and refuses to run in a production configuration (privacy.require_pii_key = true)"#),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_flow_that_opens_cases_nobody_handles_unless_told() {
    let with = default_config_anywhere();
    let start = with.find("[dispatch]\n").unwrap();
    let end = start + with[start..].find("auto_close_days = 7\n").unwrap();
    let without = format!(
        "{}{}",
        &with[..start],
        &with[end + "auto_close_days = 7\n".len()..]
    );
    let (code, _, stderr) = run_with(&["serve"], &without, &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "flows/legal_help.toml: nodes.end_urgent.open_case = true: opens a case, but"
        ) && stderr.contains("has no [dispatch]: nobody would be told"),
        "{stderr}"
    );
    // Said explicitly: cases reach lawyers another way.
    let elsewhere = without.replace(
        "# cases_handled_elsewhere = false",
        "cases_handled_elsewhere = true",
    );
    let (code, stdout, stderr) = run_with(&["check"], &elsewhere, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

#[test]
fn check_exits_3_on_warnings_only() {
    // A lint warning: a word that would give her away on a discreet screen.
    let dir = tempfile::tempdir().unwrap();
    let flow = std::fs::read_to_string(common::root().join("flows/legal_help.toml"))
        .unwrap()
        .replace("en = \"Which city?\"", "en = \"Which city? (police)\"");
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/legal_help.toml"), flow).unwrap();
    let cfg = default_config_anywhere().replace(
        &format!("{:?}", common::root().join("flows").display().to_string()),
        &format!("{:?}", dir.path().join("flows").display().to_string()),
    );
    let (code, stdout, stderr) = run_with(&["check"], &cfg, &[]);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: ") && !stderr.contains("error: "),
        "{stderr}"
    );
    assert!(stdout.contains("1 warning(s), no errors"), "{stdout}");
}

/// A newcomer fixed the config's errors only to be shown the roster's on
/// the next run: `check` now lists the problems of the file and of the
/// flows, roster and texts it names in one run.
#[test]
fn check_lists_the_configs_and_the_rosters_problems_in_one_run() {
    let cfg =
        default_config_anywhere().replace("# require_pii_key = false", "require_pii_key = true");
    let (code, stdout, stderr) = run_with(&["check"], &cfg, &[PII_KEY]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("a placeholder (\"000 000 000\") in a production configuration"),
        "the file's: {stderr}"
    );
    assert!(
        stderr.contains("her number is in a fictional range no phone answers"),
        "the roster's, in the same run: {stderr}"
    );
    assert!(stdout.contains("error(s)"), "{stdout}");
}

/// `serve` on Redis opens its spool folder first thing; one that cannot be
/// made (a file in its path) stopped `serve` with exit 64 while `check`
/// said "no problems found".
#[test]
fn check_fails_a_spool_folder_serve_could_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roster.toml");
    std::fs::write(&file, "").unwrap();
    let spool = file.join("spool");
    let base = default_config_anywhere().replace("kind = \"memory\"", "kind = \"redis\"");
    let cfg = base.replace(
        "# spool_dir = \"../var/spool\"",
        &format!("spool_dir = {:?}", spool.display().to_string()),
    );
    assert_ne!(cfg, base, "the shipped config lost its spool_dir line");
    let env = [("HOTLINE_REDIS_URL", "redis://127.0.0.1:1/")];
    let (code, stdout, stderr) = run_with(&["check"], &cfg, &env);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "store.spool_dir = {:?}: {} is not a folder, so the spool cannot be made under it",
            spool.display().to_string(),
            file.display()
        )),
        "{stderr}"
    );
    let (code, _, stderr) = run_with(&["serve"], &cfg, &env);
    assert_eq!(code, Some(64), "serve refuses it too: {stderr}");
    // A folder that can be made passes (nothing is left behind).
    let fine = dir.path().join("var/spool");
    let cfg = base.replace(
        "# spool_dir = \"../var/spool\"",
        &format!("spool_dir = {:?}", fine.display().to_string()),
    );
    let (_, _, stderr) = run_with(&["check"], &cfg, &env);
    assert!(!stderr.contains("spool_dir"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "check made nothing"
    );
}

/// The shipped config on a Redis nobody answers at: `check` cannot read
/// the lawyers' confirmed numbers, and a deploy onto a store that cannot be
/// reached must not pass as clean (the audit saw exit 0, "no problems
/// found").
#[test]
fn check_warns_with_exit_3_when_the_store_cannot_be_reached() {
    let cfg = default_config_anywhere().replace("kind = \"memory\"", "kind = \"redis\"");
    let (code, stdout, stderr) = run_with(
        &["check"],
        &cfg,
        &[("HOTLINE_REDIS_URL", "redis://127.0.0.1:1/")],
    );
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("store: the store could not be reached"),
        "{stderr}"
    );
    assert!(stdout.contains("1 warning(s), no errors"), "{stdout}");
    assert!(!stdout.contains("no problems found"), "{stdout}");
}

/// A Redis that evicts keys when full loses a case, an offer or a timer
/// without a sentinel noticing (a key read every 5 s is never the one
/// evicted: operator audit). `check` says so when the ACL lets it read
/// `INFO memory`, and passes a `noeviction` Redis clean.
#[test]
fn check_warns_of_a_redis_that_evicts_keys() {
    let cfg = default_config_anywhere().replace("kind = \"memory\"", "kind = \"redis\"");
    let lru = common::redis::RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let (code, stdout, stderr) = run_with(&["check"], &cfg, &[("HOTLINE_REDIS_URL", &lru.url)]);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("store: Redis evicts keys when full (maxmemory-policy allkeys-lru)"),
        "{stderr}"
    );
    let safe = common::redis::RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let (code, stdout, stderr) = run_with(&["check"], &cfg, &[("HOTLINE_REDIS_URL", &safe.url)]);
    assert!(!stderr.contains("evicts keys"), "{stderr}");
    assert_ne!(code, Some(1), "{stdout}\n{stderr}");
}

/// `check --screens` gives the most parts a lawyer text can take: with her
/// location at the flow's `max_len` (80), `uk.accepted` is 3 parts, not
/// the 2 a short sample location gives (the audit's real message was 147
/// UCS-2 characters). The README quotes the line's form.
#[test]
fn check_screens_measures_lawyer_texts_with_answers_at_their_max_len() {
    let out = hotline(&["check", "--screens"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("lawyer text uk.accepted:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let (_, worst) = line
        .split_once("; at most ")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        worst.ends_with("SMS 3 part(s) (answers at their max_len)"),
        "{line}"
    );
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "`…; at most {}`",
            worst.replace(" part(s) (", "\npart(s) (")
        )),
        "README quotes: {worst}"
    );
    let offer = stdout
        .lines()
        .find(|l| l.contains("lawyer text ru.offer:"))
        .unwrap();
    assert!(
        !offer.contains("at most"),
        "an offer is cut to fit: {offer}"
    );
}

/// `hotline simulate` with the lines a person would type.
fn simulate(args: &[&str], input: &str) -> (Option<i32>, String) {
    let mut child = Command::new(common::binary())
        .arg("simulate")
        .args(args)
        .current_dir(common::root())
        .env_remove("HOTLINE_CONFIG")
        .env_remove("HOTLINE_REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn simulate_shows_the_offer_fast_forwards_escalation_and_answers_as_a_lawyer() {
    // Nobody answers: the team, the coordinator, then her "please call".
    let (code, out) = simulate(
        &["--number", "+996555123456"],
        "4\n1\n1\nStation 5\n0\n:wait 10m\n:quit\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("── SMS to lawyer demo-"), "{out}");
    assert!(
        out.contains("── SMS to lawyer demo-kanykei (+447700900100)"),
        "{out}"
    );
    assert!(
        out.contains("── SMS to her (+996555123456) · GSM-7 · 1 part(s) ──\nWe could not reach you yet about "),
        "{out}"
    );
    assert!(out.contains("── 10m later ──"), "{out}");
    // The coordinator, once offered the case, accepts it with a bare OK.
    let (code, out) = simulate(
        &["--number", "+996555123456", "--lawyer", "demo-kanykei"],
        "4\n1\n1\nStation 5\n0\n:wait 5m\nOK\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("── SMS to her (+996555123456) · GSM-7 · 1 part(s) ──\nWe have your request ")
            && out.contains(". You will get a call soon."),
        "{out}"
    );
}

#[tokio::test]
async fn oncall_names_the_lawyers_who_sent_off_read_from_redis_never_a_number() {
    use hotline::store::Store;
    let redis = common::redis::RedisServer::shared_or_start();
    let prefix = common::redis::unique_prefix("oncall_off");
    let store = hotline::store::redis::RedisStore::connect(
        &redis.url,
        &prefix,
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap();
    let key = hotline::store::keys::lawyer_off("demo-bermet");
    store.put(None, &key, b"1".to_vec(), None, 0).await.unwrap();
    let cfg = default_config_anywhere()
        .replace("[store]\n", &format!("[store]\nkey_prefix = {prefix:?}\n"));
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_with(
            &["oncall", "--days", "1"],
            &cfg,
            &[("HOTLINE_REDIS_URL", &redis.url)],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("  off call (sent OFF; skipped until ON): Bermet (demo) (demo-bermet)\n"),
        "{out}"
    );
    assert!(
        out.contains("  off call (sent OFF): nobody\n"),
        "Poltava: {out}"
    );
    for number in ["+996", "+380", "+44"] {
        assert!(!out.contains(number), "a number in:\n{out}");
    }
    // On the memory store the flags live in the running gateway.
    let (code, out, err) = run_with(&["oncall", "--days", "1"], &default_config_anywhere(), &[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("  off call (sent OFF): kept by the running gateway (memory store): see its status page\n"), "{out}");
}

/// The runbook's toolkit runs hotline commands the way the service runs
/// them (`hcheck`, and `h` for the others: the config and the secrets from
/// /etc/hotline/env). Run its definitions as written, with the host's paths
/// pointed at a copy of the default setup and this build.
#[test]
fn the_runbooks_command_helpers_work_as_written() {
    let runbook = std::fs::read_to_string(common::root().join("ops/RUNBOOK.md")).unwrap();
    let def = |name: &str| {
        runbook
            .lines()
            .find(|l| l.starts_with(&format!("{name}() {{")))
            .unwrap_or_else(|| panic!("the runbook defines {name}()"))
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let env = dir.path().join("env");
    std::fs::write(
        &env,
        "HOTLINE_PII_KEY=runbook-test-key-0123456789-0123456789\n",
    )
    .unwrap();
    let script = format!(
        "{}\n{}\nhcheck >/dev/null; echo \"hcheck=$?\"\nh oncall --days 1; echo \"h=$?\"\n",
        def("hcheck"),
        def("h")
    )
    .replace("/etc/hotline/env", &env.display().to_string())
    .replace("/etc/hotline/hotline.toml", &config.display().to_string())
    // The service's own user exists on a hotline host only: run as
    // whoever runs the tests, through the same setpriv.
    .replace(
        "--reuid=hotline --regid=hotline --init-groups",
        "--reuid=$(id -u) --regid=$(id -g) --keep-groups",
    )
    .replace(
        "/usr/local/bin/hotline",
        &common::binary().display().to_string(),
    );
    assert!(
        script.contains("setpriv --reuid=$(id -u)"),
        "hcheck runs the check as the service user: {script}"
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env_remove("HOTLINE_CONFIG")
        .env_remove("HOTLINE_REDIS_URL")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("hcheck=0\n"), "{stdout}\n{stderr}");
    assert!(stdout.contains("h=0\n"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("bishkek — Bishkek (Asia/Bishkek, UTC+06)"),
        "{stdout}"
    );
}

#[test]
fn simulate_answers_as_a_lawyer_named_by_her_id_or_her_name() {
    let (code, out) = simulate(
        &["--number", "+996555123456"],
        "4\n1\n1\nStation 5\n0\n:wait 2m\n:as Zed\n:as AIGUL\nOK\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("(no lawyer \"Zed\" in the roster: give her id or name, e.g. :as "),
        "{out}"
    );
    assert!(
        !out.contains("Some("),
        "no Rust value in what she reads: {out}"
    );
    // Her name, in any case, finds her; the prompt shows her id.
    assert!(out.contains("demo-aigul> "), "{out}");
    assert!(
        out.contains("── SMS to lawyer demo-aigul (+447700900101) · GSM-7 · 1 part(s) ──\nCase ")
            && out.contains(" is yours."),
        "{out}"
    );
    // --lawyer takes a name too.
    let (code, out) = simulate(
        &["--number", "+996555123456", "--lawyer", "kanykei"],
        "4\n1\n1\nStation 5\n0\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("demo-kanykei> "), "{out}");
    assert!(!out.contains("no lawyer"), "{out}");
}

/// The case code in a simulator transcript, replaced by `CODE` wherever it
/// stands alone (not inside a longer number).
fn without_code(text: &str) -> String {
    let code: String = text
        .split("Your code is ")
        .nth(1)
        .expect("a code")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&code) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + code.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(&code);
        } else {
            out.push_str("CODE");
        }
        rest = &rest[i + code.len()..];
    }
    out.push_str(rest);
    out
}

/// A transcript's lines with each prompt (`> `, `demo-bermet> `) on a line
/// of its own and what was typed after it left out: the simulator does not
/// echo input, so its output has the next line right after the prompt.
fn prompts_apart(text: &str, typed: &mut Vec<String>) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("> ") {
            let prompt = &rest[..i];
            if prompt.contains(char::is_whitespace) || prompt.starts_with('─') {
                break;
            }
            lines.push(format!("{prompt}>"));
            rest = &rest[i + 2..];
            if !rest.starts_with('─') && !rest.starts_with('(') && !rest.contains("> ") {
                // The README shows what was typed here.
                typed.push(rest.to_owned());
                rest = "";
            }
        }
        if !rest.is_empty() {
            lines.push(rest.to_owned());
        }
    }
    lines
}

#[test]
fn the_readmes_simulate_transcript_is_what_the_binary_prints_in_order() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let command = "cargo run --release -- simulate --number +996555123456";
    let after = &readme[readme.find(command).expect("the README runs simulate")..];
    let walk = "Answering `4` (English), `1` (Bishkek), `1` (detained), `Station 5` and `0`";
    assert!(
        after.contains(walk),
        "the README says what was typed on the first screens"
    );
    let start = after
        .find("\n```\n── ")
        .expect("the transcript after the command")
        + 5;
    let block = &after[start..];
    let block = &block[..block.find("\n```\n").expect("its end")];
    let mut typed = Vec::new();
    let shown = prompts_apart(&without_code(block), &mut typed);
    assert_eq!(typed, [":wait 2m", "OK"], "{shown:#?}");

    let input = format!("4\n1\n1\nStation 5\n0\n{}\n", typed.join("\n"));
    let (code, out) = simulate(&["--number", "+996555123456"], &input);
    assert_eq!(code, Some(0), "{out}");
    let printed = prompts_apart(&without_code(&out), &mut Vec::new());
    let start = printed
        .iter()
        .position(|l| l == &shown[0])
        .unwrap_or_else(|| panic!("no {:?} in:\n{out}", shown[0]));
    assert_eq!(
        printed[start..start + shown.len()],
        shown[..],
        "README.md's simulate transcript, line by line, against:\n{out}"
    );
}
