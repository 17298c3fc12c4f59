#!/usr/bin/env bash
# Load tests: the gateway against the floor of the same machine, in one run.
#
#   load-tests/run.sh [steady|scale|burst|flood|mixed|rss|cpu|all]...   (default: steady)
#   load-tests/run.sh configs    (only write each scenario's gateway config
#                                 and run `hotline check` on it; tests/cli.rs)
#
# Builds the release binaries (hotline, examples/floor.rs, examples/loadgen.rs),
# starts a private redis-server on a free loopback port, the floor servers and
# the gateway (memory and Redis stores) as each scenario needs, drives each
# with the same generator (examples/loadgen.rs), prints a table and writes
# load-tests/results/latest.json. docs/performance.md explains every scenario.
#
# Environment:
#   LT_SCALE        multiply every duration (default 1; 0.3 for a quick run)
#   LT_CONNECTIONS  connections for steady/flood (default 16)
#   LT_ROUNDS       steady: rounds of gateway and floor in turn (default 5)
#   LT_BURST_BASE   burst: the normal rate, hops/s (default 200; the burst is 10x)
#   LT_FLOOD_RATE   flood: everyone else's rate, hops/s (default 300)
#   LT_MIXED_RATE   mixed: USSD hops/s (default 24 = 4 cases/s over three cities,
#                   under each on-call lawyer's command limit; SMS a tenth of it)
#   LT_SESSIONS     rss: live sessions to open (default 100000)
#   LT_CPU_RATE     cpu: the fixed rate every server is driven at, requests/s
#                   (default 4000, under every server's maximum here)
#   LT_NOTE         a note stored with the results (e.g. "machine shared")
#   LT_OUT          where the JSON goes (default load-tests/results/latest.json)
#   LT_KEEP=1       keep the temporary folder (configs, server logs)
#   LT_BIN          a folder with a built `hotline` to use instead of building
#                   (for `configs`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(steady)
[ "${scenarios[0]}" = all ] && scenarios=(steady scale burst flood mixed rss cpu)
for s in "${scenarios[@]}"; do
  case $s in steady|scale|burst|flood|mixed|rss|cpu|configs) ;; *) echo "unknown scenario: $s" >&2; exit 64 ;; esac
done
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
  { echo "install redis-server and redis-cli (Debian: redis-server, redis-tools)" >&2; exit 69; }

if [ -n "${LT_BIN:-}" ]; then
  bin=$LT_BIN
else
  cargo build --release --locked -q --bin hotline --example floor --example loadgen
  bin=$root/target/release
fi
lg() { "$bin/examples/loadgen" "$@"; }

work=$(mktemp -d /tmp/hotline-lt.XXXXXX)
results=$work/run.jsonl
: > "$results"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${LT_KEEP:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

dur() { awk -v s="$1" -v k="${LT_SCALE:-1}" 'BEGIN { v = s * k; if (v < 1) v = 1; print v }'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1" >&2
  return 1
}
per_second() { grep -o '"per_second":[0-9.]*' <<<"$1" | head -1 | cut -d: -f2; }

# --- shared servers -----------------------------------------------------------
redis_port=$(lg port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$redis_port"
redis_url=redis://127.0.0.1:$redis_port/

declare -A addr spid # each server's address and process id
floor() { # floor NAME MODE [REDIS_URL]
  local port; port=$(lg port)
  "$bin/examples/floor" "$2" "127.0.0.1:$port" ${3:+"$3"} 2>>"$work/floor.log" &
  spid[$1]=$!
  pids+=($!)
  wait_port "$port"
  addr[$1]=127.0.0.1:$port
}

# --- the gateway --------------------------------------------------------------
export HOTLINE_PII_KEY=${HOTLINE_PII_KEY:-load-test-key-0123456789abcdef0123456789}
export RUST_LOG=${RUST_LOG:-error}
gateway_n=0
gateway_pid=
# config KIND: the load-test config with absolute paths; KIND "flood" keeps
# the shipped per-number limits, "mixed" adds dispatch through a mock of
# Africa's Talking at $mock_port with the lawyers of config/roster.toml.
# Sets $cfg (not echoed: it exports variables, so it must not run in a subshell).
config() {
  local out=$work/hotline-$1.toml
  sed -e "s#^dir = \"../flows\"#dir = \"$root/flows\"#" \
      -e "s#^spool_dir = .*#spool_dir = \"$work/spool\"#" \
      -e "s#^\\[store\\]#[store]\\nkey_prefix = \"lt$gateway_n\"#" \
      load-tests/hotline.toml > "$out"
  case $1 in
    flood)
      sed -i -e 's/^per_number_per_minute = .*/per_number_per_minute = 30/' \
             -e 's/^per_number_burst = .*/per_number_burst = 15/' "$out" ;;
    mixed)
      # Lawyers' numbers from the environment (phone_env), never a file.
      sed -e '/^phones_file/d' \
          -e 's/^\[lawyers\.\([a-z0-9_-]*\)\]$/[lawyers.\1]\nphone_env = "LT_PHONE_\U\1"/' \
          config/roster.toml > "$work/roster.toml"
      local i=100
      for id in $(sed -n 's/^\[lawyers\.\([a-z0-9_-]*\)\]$/\1/p' config/roster.toml); do
        i=$((i + 1)); export "LT_PHONE_${id^^}=+996700000$i"
      done
      cat >> "$out" <<EOF
username = "loadtest"
api_key_env = "LT_AT_API_KEY"
base_url = "http://127.0.0.1:$mock_port"
tps = 100000

[outbox]
concurrency = 32

[dispatch]
roster = "$work/roster.toml"
texts = "$root/config/lawyer_texts.toml"
sms_channel = "africastalking"
EOF
      export LT_AT_API_KEY=k ;;
  esac
  cfg=$out
  # A config `hotline check` refuses (exit 1 or 2; 3 is warnings only, which
  # do not stop `serve`) would stop the run half-way: say so now.
  local rc=0
  "$bin/hotline" check --config "$cfg" >"$work/check-$1.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
    cat "$work/check-$1.log" >&2; echo "the $1 config is not valid" >&2; exit 1
  fi
}
gateway() { # gateway NAME STORE CONFIG-KIND
  gateway_n=$((gateway_n + 1))
  local port admin
  config "$3"
  port=$(lg port); admin=$(lg port)
  if [ "$2" = redis ]; then export HOTLINE_REDIS_URL=$redis_url; else unset HOTLINE_REDIS_URL; fi
  HOTLINE_LISTEN=127.0.0.1:$port HOTLINE_ADMIN_LISTEN=127.0.0.1:$admin \
    "$bin/hotline" serve --config "$cfg" >>"$work/hotline.log" 2>&1 &
  gateway_pid=$!
  pids+=("$gateway_pid")
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.05; done
  curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null || { tail -20 "$work/hotline.log" >&2; exit 1; }
  addr[$1]=127.0.0.1:$port
  spid[$1]=$gateway_pid
}
stop_gateway() { kill "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; }

record() { # record SCENARIO LABEL ARGS... : one generator run, kept
  local out
  out=$(lg run --scenario "$1" --label "$2" "${@:3}")
  echo "$out" >> "$results"
  echo "$out"
}

conns=${LT_CONNECTIONS:-16}

# --- scenarios ----------------------------------------------------------------
steady() {
  # Rounds of the gateway and its floor in turn (closed loop, d seconds
  # each): a round's two runs are seconds apart, so the machine's drift
  # moves both alike; the headline ratio is the median of the rounds'.
  # Each gateway run starts a new gateway (its own key prefix on Redis):
  # every round meets the same state, as in production, where cases close
  # and are erased, and not the hundreds of thousands of open cases that
  # rounds of maximum load would pile up (past the code space that
  # `store::code_candidates` is sized for). Then each at half its median
  # maximum (open loop, a new gateway again) for the p99.
  local d rounds=${LT_ROUNDS:-5}
  d=$(dur 4)
  floor floor-plain plain; floor floor-redis redis "$redis_url"
  for store in memory redis; do
    local name=hotline-$store floor_name
    floor_name=$([ $store = memory ] && echo floor-plain || echo floor-redis)
    declare -A maxes=()
    for round in $(seq "$rounds"); do
      for n in "$floor_name" "$name"; do
        if [ "$n" = "$name" ]; then gateway "$name" "$store" base; fi
        local out
        out=$(record steady "$n" --target "${addr[$n]}" --workload ussd --connections "$conns" \
          --duration "$d" --round "$round")
        maxes[$n]="${maxes[$n]:-} $(per_second "$out")"
        if [ "$n" = "$name" ]; then stop_gateway; fi
      done
    done
    for n in "$floor_name" "$name"; do
      local median
      median=$(tr ' ' '\n' <<<"${maxes[$n]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
      if [ "$n" = "$name" ]; then gateway "$name" "$store" base; fi
      record steady "$n@half" --target "${addr[$n]}" --workload ussd --connections "$conns" \
        --duration "$(dur 10)" --rate "$(awk -v m="$median" 'BEGIN { print int(m / 2) }')" >/dev/null
      if [ "$n" = "$name" ]; then stop_gateway; fi
    done
  done
}

scale() {
  local d; d=$(dur 5)
  [ -n "${addr[floor-plain]:-}" ] || floor floor-plain plain
  [ -n "${addr[floor-redis]:-}" ] || floor floor-redis redis "$redis_url"
  for store in memory redis; do
    gateway "hotline-$store" "$store" base
    for c in 1 2 4 8 16 32 64; do
      for name in "hotline-$store" "$([ $store = memory ] && echo floor-plain || echo floor-redis)"; do
        record scale "$name" --target "${addr[$name]}" --workload ussd --connections "$c" --duration "$d" >/dev/null
      done
    done
    stop_gateway
  done
}

burst() {
  local base=${LT_BURST_BASE:-200}
  for store in memory redis; do
    gateway "hotline-$store" "$store" base
    local t=${addr[hotline-$store]}
    record burst "hotline-$store:before" --target "$t" --connections 32 --duration "$(dur 10)" --rate "$base" >/dev/null
    record burst "hotline-$store:10x" --target "$t" --connections 32 --duration "$(dur 30)" --rate $((base * 10)) >/dev/null
    record burst "hotline-$store:after" --target "$t" --connections 32 --duration "$(dur 10)" --rate "$base" >/dev/null
    stop_gateway
  done
}

flood() {
  for store in memory redis; do
    gateway "hotline-$store" "$store" flood
    record flood "hotline-$store" --target "${addr[hotline-$store]}" --workload flood --connections "$conns" \
      --rate "${LT_FLOOD_RATE:-300}" --hammers 3 --duration "$(dur 15)" >/dev/null
    stop_gateway
  done
}

mixed() {
  for store in memory redis; do
    mock_port=$(lg port)
    gateway "hotline-$store" "$store" mixed
    record mixed "hotline-$store" --target "${addr[hotline-$store]}" --workload mixed --connections 8 \
      --cities 3 --rate "${LT_MIXED_RATE:-24}" --mock "127.0.0.1:$mock_port" --duration "$(dur 20)" >/dev/null
    stop_gateway
  done
}

rss() {
  local n=${LT_SESSIONS:-100000} before after
  gateway hotline-memory memory base
  before=$(awk '/^VmRSS/ { print $2 }' "/proc/$gateway_pid/status")
  record rss "hotline-memory:open-$n" --target "${addr[hotline-memory]}" --workload sessions \
    --connections "$conns" --requests "$n" --duration 120 >/dev/null
  after=$(awk '/^VmRSS/ { print $2 }' "/proc/$gateway_pid/status")
  echo "{\"scenario\":\"rss\",\"label\":\"hotline-memory\",\"sessions\":$n,\"rss_kib_before\":$before,\"rss_kib_after\":$after,\"groups\":{}}" >> "$results"
  echo "rss: $((before / 1024)) MiB idle, $((after / 1024)) MiB with $n live sessions"
  stop_gateway
}

# cpu: CPU time per request of each server at one fixed rate, below every
# server's maximum (LT_CPU_RATE, default 4,000/s), and of redis-server behind
# the Redis ones. What a request costs, without the saturation effects
# (who waits for whom on 2 shared cores) that move the maximum.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu() {
  local rate=${LT_CPU_RATE:-4000} d; d=$(dur 10)
  local hz; hz=$(getconf CLK_TCK)
  [ -n "${addr[floor-plain]:-}" ] || floor floor-plain plain
  [ -n "${addr[floor-redis]:-}" ] || floor floor-redis redis "$redis_url"
  for name in floor-plain floor-redis hotline-memory hotline-redis; do
    case $name in hotline-*) gateway "$name" "${name#hotline-}" base ;; esac
    local pid=${spid[$name]} t=${addr[$name]} out c0 c1 r0 r1 n us rus=""
    lg run --scenario cpu --label warm --target "$t" --workload ussd --connections "$conns" \
      --duration 2 --rate "$rate" >/dev/null
    case $name in *redis) redis-cli -p "$redis_port" config resetstat >/dev/null ;; esac
    c0=$(cpu_ticks "$pid"); r0=$(cpu_ticks "$redis_pid")
    out=$(lg run --scenario cpu --label "$name" --target "$t" --workload ussd --connections "$conns" \
      --duration "$d" --rate "$rate")
    c1=$(cpu_ticks "$pid"); r1=$(cpu_ticks "$redis_pid")
    n=$(grep -o '"requests":[0-9]*' <<<"$out" | head -1 | cut -d: -f2)
    [ "${n:-0}" -gt 0 ] || { echo "cpu: $name answered no request: $out" >&2; exit 1; }
    us=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", (b - a) * 1e6 / hz / n }')
    case $name in *redis)
      rus=$(awk -v a="$r0" -v b="$r1" -v hz="$hz" -v n="$n" 'BEGIN { printf ",\"redis_cpu_us_per_request\":%.2f", (b - a) * 1e6 / hz / n }')
      # Redis's own time in the scripts (INFO commandstats: EVALSHA's
      # calls and microseconds, the commands the scripts run included),
      # since the config resetstat above: what each hop costs redis-server
      # apart from reading and writing its connections.
      rus=$rus$(redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$n" '
        /^cmdstat_evalsha:/ { calls = $3; usec = $5 }
        END { printf ",\"redis_scripts_per_request\":%.3f,\"redis_script_us_per_request\":%.2f", calls / n, usec / n }') ;;
    esac
    echo "{\"scenario\":\"cpu\",\"label\":\"$name\",\"rate\":$rate,\"connections\":$conns,\"requests\":$n,\"cpu_us_per_request\":$us$rus,\"groups\":{}}" >> "$results"
    echo "cpu: $name $us µs per request"
    case $name in hotline-*) stop_gateway ;; esac
  done
}

configs() {
  mock_port=1
  for kind in base flood mixed; do
    config "$kind"
    echo "config $kind: valid"
  done
}

if [ "${scenarios[*]}" = configs ]; then
  configs
  exit 0
fi

echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), scenarios: ${scenarios[*]}"
for s in "${scenarios[@]}"; do "$s"; done
mkdir -p load-tests/results
lg report --in "$results" --out "${LT_OUT:-load-tests/results/latest.json}" \
  --git "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --date "$(date -u +%FT%TZ)" --note "${LT_NOTE:-}"
