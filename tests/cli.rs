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
    assert!(stdout.contains("nodes.city.en [country *]: "), "{stdout}");
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
            "warning: {dir}/f_too_long.toml: nodes.city.ru: screen for country * is 90 characters in UCS-2, over the USSD limit of 80"
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
[cities.poltava]
names = { en = "Poltava" }
route_to = "bishkek"
[cities.other]
names = { en = "Other" }
route_to = "bishkek"
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
        .replace("dir = \"../flows\"", &format!("dir = {:?}", root.join("flows").display().to_string()))
        .replace(
            "# [dispatch]\n# roster = \"roster.toml\"\n# texts = \"lawyer_texts.toml\"\n# sms_channel = \"africastalking\"",
            &format!(
                "[dispatch]\nroster = \"roster.toml\"\ntexts = {:?}\nsms_channel = \"africastalking\"",
                root.join("config/lawyer_texts.toml").display().to_string()
            ),
        );
    assert!(
        cfg.contains("[dispatch]\nroster"),
        "the default config documents [dispatch]"
    );
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
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
