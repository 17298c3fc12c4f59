#!/usr/bin/env bash
# Measure USSD hop throughput and latency with wrk against the release build.
#   load-tests/run.sh                 embedded memory store
#   HOTLINE_REDIS_URL=redis://127.0.0.1:6379/ load-tests/run.sh   Redis store
# Options (environment): DURATION (default 20s), CONNECTIONS (16). Each wrk
# thread has one connection, so every connection walks its own sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)"; exit 1; }
cargo build --release --locked -q
export HOTLINE_PII_KEY=${HOTLINE_PII_KEY:-load-test-key-0123456789abcdef0123456789}
export RUST_LOG=${RUST_LOG:-warn}
./target/release/hotline serve --config load-tests/hotline.toml &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
store=$( [ -n "${HOTLINE_REDIS_URL:-}" ] && echo redis || echo memory )
echo "== $(nproc) cores, store: $store, $(date -u +%F)"
wrk -t"${CONNECTIONS:-16}" -c"${CONNECTIONS:-16}" -d"${DURATION:-20s}" --latency -s load-tests/ussd.lua http://127.0.0.1:18080 | grep -E "requests:|latency p|throughput|Socket errors"
curl -s http://127.0.0.1:19090/metrics | grep -E '^hotline_(cases_opened_total\{city="bishkek"\}|webhook_requests_total\{channel="africastalking",event="ussd",outcome="(ok|rate_limited|store_unavailable|error)"\})'
