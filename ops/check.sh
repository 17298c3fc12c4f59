#!/usr/bin/env bash
# Check every operator file in ops/: the Prometheus config, the alert rules
# and their unit tests (promtool), the Alertmanager config (amtool), the
# Grafana dashboard, the metric names used everywhere, and the runbook
# sections the alerts link to.
# Exit 0 when all pass; non-zero, after running every check, otherwise.
#
# Needs promtool (Debian/Ubuntu: apt-get install prometheus), amtool
# (apt-get install prometheus-alertmanager) and python3.
# `cargo test --test ops` runs this script.
set -uo pipefail
cd "$(dirname "$0")"

for tool in promtool amtool python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    case $tool in
      promtool) echo "ops/check.sh: promtool not found: install the prometheus package for promtool" >&2 ;;
      amtool) echo "ops/check.sh: amtool not found: install the prometheus-alertmanager package for amtool" >&2 ;;
      *) echo "ops/check.sh: $tool not found" >&2 ;;
    esac
    exit 2
  fi
done

failed=0
step() {
  echo "== $*"
  if ! "$@"; then
    echo "FAILED: $*" >&2
    failed=1
  fi
}

step promtool check config prometheus/prometheus.yml
step promtool check rules prometheus/alerts.yml
step promtool test rules prometheus/alerts_test.yml
step amtool check-config alertmanager/alertmanager.yml
step python3 check_files.py

if [ "$failed" -ne 0 ]; then
  echo "ops/check.sh: some checks failed" >&2
  exit 1
fi
echo "ops/check.sh: all checks passed"
