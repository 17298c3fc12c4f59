#!/usr/bin/env python3
"""Checks of the ops/ files that promtool does not make (run by ops/check.sh).

- the Grafana dashboard is valid JSON in the shape Grafana 10 imports:
  a ${DS_PROMETHEUS} input, the $instance and $channel variables, the five
  rows, unique panel ids, every panel and query on ${DS_PROMETHEUS};
- every PromQL expression in the dashboard and in the alert rules uses only
  metrics the gateway exports (METRICS below) and `up`;
- every alert has a runbook_url pointing at its own section of
  ops/RUNBOOK.md, and that section exists;
- every alert is tested in alerts_test.yml both firing and not firing;
- every in-page link of the runbook (`](#...)`) leads to a heading.

Usage: check_files.py [--dashboard FILE] [--rules FILE] [--tests FILE]
                      [--runbook FILE]
(defaults: the files next to this script). Exit 0 when all is well, 1 with
one line per problem otherwise. Standard library only.
"""

import argparse
import json
import re
import sys
from pathlib import Path

# Every metric the gateway exports (keep in step with src/metrics.rs), plus
# Prometheus' own `up`. Histograms are queried through their buckets only.
METRICS = {
    "up",
    "hotline_webhook_requests_total",
    "hotline_webhook_duration_seconds_bucket",
    "hotline_sessions_started_total",
    "hotline_sessions_finished_total",
    "hotline_cases_opened_total",
    "hotline_store_up",
    "hotline_store_errors_total",
    "hotline_store_data_lost_total",
    "hotline_sms_refused_total",
    "hotline_sessions_evicted_total",
    "hotline_sealed_opened_with_previous_key_total",
    "hotline_ip_rate_limited_total",
    "hotline_proxy_headers_refused_total",
    "hotline_connections_refused_total",
    "hotline_connections_closed_total",
    "hotline_draining",
    "hotline_build_info",
    "hotline_cases_spooled_total",
    "hotline_cases_not_recorded_total",
    "hotline_spool_pending",
    "hotline_inbox_pending",
    "hotline_sms_kept_total",
    "hotline_outbox_sent_total",
    "hotline_outbox_failed_total",
    "hotline_outbox_retries_total",
    "hotline_channel_up",
    "hotline_channel_failures_total",
    "hotline_sms_segments_total",
    "hotline_delivery_reports_total",
    "hotline_delivery_reports_unmatched_total",
    "hotline_send_duration_seconds_bucket",
    "hotline_cases_accepted_total",
    "hotline_case_time_to_accept_seconds_bucket",
    "hotline_escalations_total",
    "hotline_cases_unanswered_total",
    "hotline_cases_exhausted_total",
    "hotline_cases_closed_total",
    "hotline_oncall_gap_seconds",
    "hotline_lawyer_commands_total",
    "hotline_lawyer_replies_withheld_total",
    "hotline_cases_open",
    "hotline_cases_unreadable",
    "hotline_case_oldest_unaccepted_seconds",
    "hotline_outbox_held",
    "hotline_outbox_held_oldest_seconds",
    "hotline_outbox_depth",
    "hotline_outbox_oldest_seconds",
    "hotline_offline_codes",
    "hotline_spool_codes_changed_total",
    "hotline_spool_codes_aliased_total",
    "hotline_cases_restored_total",
    "hotline_cases_rechecked_total",
    "hotline_config_generation",
    "hotline_config_reload_total",
    "hotline_config_last_reload_timestamp_seconds",
}

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "count",
    "count_over_time", "count_values", "delta", "deriv", "floor", "group",
    "histogram_quantile", "idelta", "increase", "irate", "label_replace",
    "last_over_time", "max", "max_over_time", "min", "min_over_time",
    "predict_linear", "quantile", "quantile_over_time", "rate", "resets",
    "round", "scalar", "sort", "sort_desc", "stddev", "sum", "sum_over_time",
    "time", "timestamp", "topk", "vector",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
LABEL_LISTS = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")

ROWS = ["Traffic", "Latency", "Cases", "Delivery", "Health"]
DS_UID = "${DS_PROMETHEUS}"


def metrics_in(expr):
    """The metric names an expression uses, and any unknown function calls."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    # Grafana's label_values(metric{...}, label): only the metric matters.
    e = re.sub(r"\blabel_values\s*\(([^,()]*(?:\{[^}]*\})?)\s*,\s*\w+\s*\)",
               r"(\1)", e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = LABEL_LISTS.sub("", e)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", "", e)
    names, unknown_functions = set(), set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if word.lower() in KEYWORDS:
            continue  # `x unless (y)` once `on (...)` is gone
        if call:
            if word not in FUNCTIONS:
                unknown_functions.add(word)
        else:
            names.add(word)
    return names, unknown_functions


def check_expr(where, expr, problems):
    if not expr.strip():
        problems.append(f"{where}: empty expression")
        return
    names, functions = metrics_in(expr)
    for n in sorted(names - METRICS):
        problems.append(f"{where}: unknown metric {n!r} in: {expr}")
    for f in sorted(functions):
        problems.append(f"{where}: unknown function {f!r} in: {expr}")


def check_dashboard(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{path}: not valid JSON: {e}")
        return
    inputs = [i.get("name") for i in d.get("__inputs", [])]
    if "DS_PROMETHEUS" not in inputs:
        problems.append(f"{path}: __inputs has no DS_PROMETHEUS datasource input")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        problems.append(f"{path}: schemaVersion must be 36 or more (Grafana 10)")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    for name in ("instance", "channel"):
        v = variables.get(name)
        if v is None:
            problems.append(f"{path}: no ${name} template variable")
            continue
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        check_expr(f"{path}: variable {name}", query or "", problems)
        if (v.get("datasource") or {}).get("uid") != DS_UID:
            problems.append(f"{path}: variable {name} is not on {DS_UID}")
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            check_expr(f"{path}: annotation {a.get('name')!r}", a["expr"], problems)

    top = d.get("panels", [])
    rows = [p.get("title") for p in top if p.get("type") == "row"]
    if rows != ROWS:
        problems.append(f"{path}: rows are {rows}, expected {ROWS}")
    panels = []
    for p in top:
        panels.append(p)
        panels.extend(p.get("panels", []))  # panels of collapsed rows
    ids = [p.get("id") for p in panels]
    for i in sorted({i for i in ids if ids.count(i) > 1}, key=str):
        problems.append(f"{path}: panel id {i} used more than once")
    queries = 0
    for p in panels:
        where = f"{path}: panel {p.get('title')!r}"
        if "gridPos" not in p:
            problems.append(f"{where}: no gridPos")
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != DS_UID:
            problems.append(f"{where}: datasource is not {DS_UID}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != DS_UID:
                problems.append(f"{where}: query {t.get('refId')} is not on {DS_UID}")
            check_expr(where, t.get("expr", ""), problems)
            queries += 1
    if queries == 0:
        problems.append(f"{path}: no queries at all")


def rule_exprs(text):
    """(line number, expression) of every `expr:` in a rules file.

    Handles the two forms used: `expr: one line` and a `expr: |` block."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, rest = len(m.group(1)), m.group(2).strip()
        start = i + 1
        if rest in ("|", "|-", ">", ">-"):
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            out.append((start, "\n".join(block)))
        else:
            out.append((start, rest.strip("'\"")))
            i += 1
    return out


def alerts_with_runbooks(text):
    """(alert name, runbook_url or None) in file order."""
    out = []
    for block in re.split(r"\n\s*- alert:", "\n" + text)[1:]:
        name = block.split("\n", 1)[0].strip()
        m = re.search(r'runbook_url:\s*"?([^"\n]+)"?', block)
        out.append((name, m.group(1).strip() if m else None))
    return out


def slug(heading):
    """The anchor GitHub gives a Markdown heading."""
    h = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def check_runbook_links(runbook, problems):
    text = runbook.read_text(encoding="utf-8")
    anchors = {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}
    for target in sorted(set(re.findall(r"\]\(#([^)]+)\)", text))):
        if target not in anchors:
            problems.append(f"{runbook}: link to #{target}, but no heading has that anchor")


def check_rules(rules, tests, runbook, problems):
    text = rules.read_text(encoding="utf-8")
    for line, expr in rule_exprs(text):
        check_expr(f"{rules}:{line}", expr, problems)
    alerts = alerts_with_runbooks(text)
    if not alerts:
        problems.append(f"{rules}: no alerts found")
    headings = set(re.findall(r"^#{1,6}\s+(\S+)\s*$",
                              runbook.read_text(encoding="utf-8"), re.M))
    for name, url in alerts:
        anchor = name.lower()
        if url is None:
            problems.append(f"{rules}: alert {name} has no runbook_url")
        elif not url.endswith(f"RUNBOOK.md#{anchor}"):
            problems.append(f"{rules}: alert {name}: runbook_url {url!r} should end in RUNBOOK.md#{anchor}")
        if name not in headings:
            problems.append(f"{runbook}: no section headed {name} (the anchor of alert {name})")

    fired, quiet = set(), set()
    current = None
    for raw in tests.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"alertname:\s*(\S+)", line)
        if m:
            current = m.group(1)
        elif current and re.match(r"exp_alerts:\s*\[\s*\]", line):
            quiet.add(current)
        elif current and re.match(r"exp_alerts:\s*$", line):
            fired.add(current)
    for name, _ in alerts:
        if name not in fired:
            problems.append(f"{tests}: alert {name} is never tested firing")
        if name not in quiet:
            problems.append(f"{tests}: alert {name} is never tested not firing")


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--dashboard", type=Path, default=here / "grafana/hotline.json")
    ap.add_argument("--rules", type=Path, default=here / "prometheus/alerts.yml")
    ap.add_argument("--tests", type=Path, default=here / "prometheus/alerts_test.yml")
    ap.add_argument("--runbook", type=Path, default=here / "RUNBOOK.md")
    args = ap.parse_args()
    problems = []
    check_dashboard(args.dashboard, problems)
    check_rules(args.rules, args.tests, args.runbook, problems)
    check_runbook_links(args.runbook, problems)
    for p in problems:
        print(f"problem: {p}")
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    print("dashboard, metric names, runbook anchors and links, alert tests: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
