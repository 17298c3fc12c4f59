#!/usr/bin/env bash
# Where a hop goes, next to its floor: instructions per request under
# callgrind (valgrind), the same generator and sessions for each server,
# and each one's top functions by their own instructions.
#
#   load-tests/profile.sh [SECONDS [NAME...]]
#
# SECONDS of load per server (default 20); NAMEs among floor-plain,
# hotline-memory, floor-redis, hotline-redis (default: all four). Builds
# the release binaries as load-tests/run.sh does, starts a private
# redis-server when a Redis one is asked for, then `examples/floor.rs plain`
# / `redis` and `hotline serve` (memory or Redis store,
# load-tests/hotline.toml) each under `valgrind --tool=callgrind`: once
# started and stopped with no request (start-up and shutdown, subtracted),
# once driven by `examples/loadgen.rs` (2 connections walking six-hop
# sessions) for SECONDS. Prints requests, instructions per request and the
# top 20 functions by their own instructions (callgrind_annotate). Counts
# do not depend on what else the machine runs (unlike time); the kernel's
# work (syscalls, the network) and Redis's are not in them. Needs valgrind.
# LT_KEEP=1 keeps the callgrind files; LT_BIN=DIR profiles the binaries
# in DIR (`hotline`, `examples/floor`, `examples/loadgen`) instead of
# building them: another build, to compare. Ends with each store's
# instructions per request as a multiple of its floor's, and writes all
# of them to load-tests/results/profile.json (LT_PROFILE_OUT for another
# file).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-20}
command -v valgrind >/dev/null || { echo "install valgrind" >&2; exit 69; }
if [ -n "${LT_BIN:-}" ]; then
  bin=$LT_BIN
else
  cargo build --release --locked -q --bin hotline --example floor --example loadgen
  bin=$root/target/release
fi
lg() { "$bin/examples/loadgen" "$@"; }
work=$(mktemp -d /tmp/hotline-prof.XXXXXX)
pid=
redis_pid=
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ -z "$redis_pid" ] || { kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
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
  local name=$1 up=$2
  shift 2
  # Start-up and shutdown alone, to subtract: the server started, ready,
  # stopped, no request.
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.idle" "$@" 2>/dev/null &
  pid=$!
  wait_up "$up"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
  local idle
  idle=$(total "$work/$name.idle")
  # The run: the same, with the load in between.
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.callgrind" "$@" 2>"$work/$name.valgrind.log" &
  pid=$!
  wait_up "$up"
  local res requests
  res=$(lg run --scenario profile --label "$name" --target "$addr" --workload ussd \
    --connections 2 --duration "$secs")
  requests=$(grep -o '"requests":[0-9]*' <<<"$res" | head -1 | cut -d: -f2)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
  local all
  all=$(total "$work/$name.callgrind")
  per[$name]=$(( (all - idle) / (requests > 0 ? requests : 1) ))
  echo "== $name: $requests requests; $all instructions, $idle of them start-up and shutdown;" \
    "${per[$name]} per request"
  echo "   top functions by their own instructions (start-up included):"
  callgrind_annotate --inclusive=no "$work/$name.callgrind" 2>/dev/null \
    | sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \( *[0-9.]+%\)' | awk 'NR <= 20' \
    | sed -E 's/ \[[^]]*\]$//' | cut -c1-150 || true
}
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n { gsub(",", "", $1); print $1; n = 1 }'; }

declare -A per # instructions per request, by server
names=("${@:2}")
[ ${#names[@]} -gt 0 ] || names=(floor-plain hotline-memory floor-redis hotline-redis)
redis_url=
for name in "${names[@]}"; do
  case $name in
    floor-plain|hotline-memory) ;;
    floor-redis|hotline-redis)
      if [ -z "$redis_url" ]; then
        command -v redis-server >/dev/null || { echo "install redis-server" >&2; exit 69; }
        rport=$(lg port)
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
          --dir "$work" --logfile "$work/redis.log" &
        redis_pid=$!
        for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
        redis_url=redis://127.0.0.1:$rport/
      fi ;;
    *) echo "unknown server: $name" >&2; exit 64 ;;
  esac
done
for name in "${names[@]}"; do
  port=$(lg port); admin=$(lg port)
  addr=127.0.0.1:$port
  case $name in
    floor-plain) profile "$name" "http://$addr/" "$bin/examples/floor" plain "$addr" ;;
    floor-redis) profile "$name" "http://$addr/" "$bin/examples/floor" redis "$addr" "$redis_url" ;;
    hotline-memory)
      HOTLINE_LISTEN=$addr HOTLINE_ADMIN_LISTEN=127.0.0.1:$admin \
        profile "$name" "http://127.0.0.1:$admin/readyz" "$bin/hotline" serve --config "$work/hotline.toml" ;;
    hotline-redis)
      HOTLINE_REDIS_URL=$redis_url HOTLINE_LISTEN=$addr HOTLINE_ADMIN_LISTEN=127.0.0.1:$admin \
        profile "$name" "http://127.0.0.1:$admin/readyz" "$bin/hotline" serve --config "$work/hotline.toml" ;;
  esac
done

# The summary: each server's instructions per request, and each store's
# as a multiple of its floor's (the measure that does not move with the
# machine), printed and written as JSON (LT_PROFILE_OUT, default
# load-tests/results/profile.json).
out=${LT_PROFILE_OUT:-$root/load-tests/results/profile.json}
json=""
for name in "${names[@]}"; do
  json+="${json:+, }\"$name\": ${per[$name]}"
done
ratios=""
for pair in hotline-memory:floor-plain hotline-redis:floor-redis; do
  gw=${pair%%:*} fl=${pair##*:}
  if [ -n "${per[$gw]:-}" ] && [ -n "${per[$fl]:-}" ] && [ "${per[$fl]}" -gt 0 ]; then
    r=$(awk -v a="${per[$gw]}" -v b="${per[$fl]}" 'BEGIN { printf "%.2f", a / b }')
    echo "$gw / $fl: $r x the instructions per request"
    ratios+="${ratios:+, }\"${gw}_vs_${fl}\": $r"
  fi
done
mkdir -p "$(dirname "$out")"
printf '{"date": "%s", "git": "%s", "seconds": %s, "instructions_per_request": {%s}, "ratios": {%s}}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$secs" "$json" "$ratios" > "$out"
echo "wrote $out"
