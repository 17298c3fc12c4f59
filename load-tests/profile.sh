#!/usr/bin/env bash
# Where the embedded store's hop goes, next to plain hyper: instructions per
# request under callgrind (valgrind), the same generator and sessions for
# both, and each one's top functions by their own instructions.
#
#   load-tests/profile.sh [SECONDS]     (default 20 of load per server)
#
# Builds the release binaries as load-tests/run.sh does, starts
# `examples/floor.rs plain` and `hotline serve` (memory store,
# load-tests/hotline.toml) each under `valgrind --tool=callgrind`, zeroes
# the counters once the server is ready (start-up is not counted), drives it
# with `examples/loadgen.rs` (2 connections walking six-hop sessions), then
# dumps and prints: requests, instructions, instructions per request and
# the top 15 functions (callgrind_annotate, exclusive). Instruction counts
# do not depend on what else the machine runs (unlike time). Needs valgrind.
# LT_KEEP=1 keeps the callgrind files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-20}
command -v valgrind >/dev/null || { echo "install valgrind" >&2; exit 69; }
cargo build --release --locked -q --bin hotline --example floor --example loadgen
bin=$root/target/release
lg() { "$bin/examples/loadgen" "$@"; }
work=$(mktemp -d /tmp/hotline-prof.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  if [ -n "${LT_KEEP:-}" ]; then echo "kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
wait_up() { # wait_up URL: a server under valgrind starts slowly
  for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "not up: $1" >&2; return 1
}
export HOTLINE_PII_KEY=${HOTLINE_PII_KEY:-load-test-key-0123456789abcdef0123456789}
export RUST_LOG=${RUST_LOG:-error}
sed -e "s#^dir = \"../flows\"#dir = \"$root/flows\"#" \
    -e "s#^spool_dir = .*#spool_dir = \"$work/spool\"#" \
    load-tests/hotline.toml > "$work/hotline.toml"

profile() { # profile NAME URL-TO-WAIT-FOR COMMAND...
  local name=$1 up=$2 out=$work/$1.callgrind
  shift 2
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" 2>"$work/$name.valgrind.log" &
  pid=$!
  wait_up "$up"
  callgrind_control -z "$pid" >/dev/null
  local res requests
  res=$(lg run --scenario profile --label "$name" --target "$addr" --workload ussd \
    --connections 2 --duration "$secs")
  requests=$(grep -o '"requests":[0-9]*' <<<"$res" | head -1 | cut -d: -f2)
  callgrind_control -d "$pid" >/dev/null
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  # The dump made after the load is the one with the counters since zeroing.
  local dump
  dump=$(ls -t "$out".* 2>/dev/null | head -1)
  [ -n "$dump" ] || dump=$out
  local total
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
  echo "== $name: $requests requests, $total instructions, $((total / (requests > 0 ? requests : 1))) per request"
  callgrind_annotate --threshold=100 "$dump" 2>/dev/null \
    | awk '/^-+$/ { sep++ ; next } sep >= 3 && NF > 1 && n < 15 { print; n++ }' \
    | sed -E 's/\(\S+\)$//' | cut -c1-160
}

port=$(lg port)
addr=127.0.0.1:$port
profile floor-plain "http://$addr/" "$bin/examples/floor" plain "$addr"
port=$(lg port); admin=$(lg port)
addr=127.0.0.1:$port
HOTLINE_LISTEN=$addr HOTLINE_ADMIN_LISTEN=127.0.0.1:$admin \
  profile hotline-memory "http://127.0.0.1:$admin/readyz" "$bin/hotline" serve --config "$work/hotline.toml"
