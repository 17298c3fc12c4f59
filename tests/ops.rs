//! The operator files in `ops/` stay valid: the Prometheus config, the alert
//! rules and their promtool unit tests, the Grafana dashboard, the metric
//! names they use and the runbook sections the alerts link to.
//!
//! `ops/check.sh` does the checking; these tests run it, and show that its
//! own checker (`ops/check_files.py`) catches the mistakes it is there for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(tool: &str, hint: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "`{tool}` not found: {hint}");
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check_files(args: &[&Path]) -> Output {
    require("python3", "install python3 to check the ops/ files");
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("ops/check_files.py"));
    for pair in args.chunks(2) {
        cmd.arg(pair[0]).arg(pair[1]);
    }
    cmd.output().expect("python3 runs")
}

#[test]
fn ops_check_script_passes() {
    require(
        "promtool",
        "install the prometheus package for promtool (Debian/Ubuntu: apt-get install prometheus)",
    );
    require("python3", "install python3 to check the ops/ files");
    let out = Command::new("bash")
        .arg(root().join("ops/check.sh"))
        .output()
        .expect("bash runs");
    let log = text(&out);
    assert!(out.status.success(), "ops/check.sh failed:\n{log}");
    // Every step ran, including the alert unit tests.
    assert!(log.contains("promtool test rules"), "{log}");
    assert!(log.contains("SUCCESS"), "{log}");
    assert!(log.contains("ops/check.sh: all checks passed"), "{log}");
}

#[test]
fn dashboard_check_rejects_a_metric_the_gateway_does_not_export() {
    let mut dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("ops/grafana/hotline.json")).expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let panels = dash["panels"].as_array_mut().expect("panels");
    let mut panel = panels
        .iter()
        .find(|p| p["type"] == "timeseries")
        .expect("a time series panel")
        .clone();
    panel["id"] = serde_json::json!(9999);
    panel["targets"][0]["expr"] =
        serde_json::json!("sum(rate(hotline_webhook_requests_totl{instance=~\"$instance\"}[5m]))");
    panels.push(panel);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hotline.json");
    std::fs::write(&path, serde_json::to_string_pretty(&dash).expect("json")).expect("write");

    let out = check_files(&[Path::new("--dashboard"), &path]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("unknown metric 'hotline_webhook_requests_totl'"),
        "{log}"
    );
    // The real dashboard's metrics are all known: only the typo is reported.
    assert_eq!(log.matches("unknown metric").count(), 1, "{log}");
}

#[test]
fn rules_check_requires_a_runbook_section_and_tests_for_each_alert() {
    let rules = std::fs::read_to_string(root().join("ops/prometheus/alerts.yml")).expect("rules");
    let extra = r#"
      - alert: HotlineSomethingNew
        expr: hotline_store_up == 2
        labels:
          severity: warning
        annotations:
          summary: "new"
          runbook_url: "ops/RUNBOOK.md#hotlinesomethingnew"
"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("alerts.yml");
    std::fs::write(&path, format!("{}{extra}", rules.trim_end())).expect("write");

    let out = check_files(&[Path::new("--rules"), &path]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("no section headed HotlineSomethingNew"),
        "{log}"
    );
    assert!(
        log.contains("alert HotlineSomethingNew is never tested firing"),
        "{log}"
    );
    assert!(
        log.contains("alert HotlineSomethingNew is never tested not firing"),
        "{log}"
    );
    assert_eq!(log.matches("problem:").count(), 3, "{log}");
}
