#!/usr/bin/env bash
# Fuzz every target for a bounded time (docs/security.md, "Fuzzing").
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Installs cargo-fuzz if it is missing, builds the targets (release, debug
# assertions on), runs each for SECONDS_PER_TARGET (default 20) on a
# scratch copy of its corpus, and prints each target's executions. A crash
# leaves its input in fuzz/artifacts/<target>/ and makes the script exit 1.
#
# No sanitizer by default (FUZZ_SANITIZER=none): the gateway forbids unsafe
# code, so panics are what we look for, and without a sanitizer cargo-fuzz
# passes no -Z flag, so stable Rust builds it. FUZZ_SANITIZER=address needs
# -Zsanitizer: RUSTC_BOOTSTRAP=1 lets stable Rust accept it.
#
# Release builds with 16 codegen units (FUZZ_CODEGEN_UNITS; cargo-fuzz's
# own default is 1): on 2 cores the whole gateway then builds in a fraction
# of the time, and the targets run somewhat slower — the right trade for the
# bounded run in CI. FUZZ_CODEGEN_UNITS=1 for a long campaign.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
sanitizer=${FUZZ_SANITIZER:-none}
[ "$sanitizer" = none ] || export RUSTC_BOOTSTRAP=1
flags=(--sanitizer "$sanitizer" --release --debug-assertions
  --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")
cargo fuzz build "${flags[@]}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
for t in "${targets[@]}"; do
  # New corpus entries go to the scratch copy: the committed seeds stay small.
  mkdir -p "$scratch/$t"
  cp fuzz/corpus/"$t"/* "$scratch/$t/"
  log="$scratch/$t.log"
  if cargo fuzz run "${flags[@]}" "$t" "$scratch/$t" -- \
      -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
      >"$log" 2>&1; then
    echo "$t: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | tr -s '[:space:]' ' ')"
  else
    failed=1
    echo "$t: CRASH"
    grep -E -A3 "panicked at|==ERROR|SUMMARY|Test unit written" "$log" | head -20
  fi
done
exit $failed
