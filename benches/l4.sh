#!/usr/bin/env bash
# L4 balancer, side by side: runs the shared peer harness (direct, HAProxy mode tcp with
# splice-auto, nginx stream) with `switchyard lb` in the candidate slot, in one interleaved run.
#
#   benches/l4.sh                      # full run (~5 min): release build first, then the harness
#   REPS=1 IPERF_T=3 WRK_T=4 benches/l4.sh
#   LB_ARGS="--forwarding copy" benches/l4.sh      # extra quick-mode flags for the candidate
#   INSTALL=1 benches/l4.sh            # apt-get install the peers and load tools if missing
#
# Env: BENCH_DIR (shared harness: default ../shared/bench next to the repo, or /work/shared/bench),
#      SWITCHYARD (binary, default target/release/switchyard), CANDIDATE_PORT (18011), LB_ARGS,
#      plus everything the harness reads (REPS, IPERF_T, WRK_T, CONNS, TARGETS, BENCH_OUT, KEEP_WORK).
# Everything runs on 127.0.0.1; only processes started here are stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

if [ -n "${INSTALL:-}" ]; then
  missing=""
  for t in haproxy nginx iperf3 wrk curl; do command -v "$t" >/dev/null || missing="$missing $t"; done
  [ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$missing libnginx-mod-stream"
  if [ -n "$missing" ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
  fi
fi

BENCH_DIR="${BENCH_DIR:-}"
for d in "$BENCH_DIR" "$ROOT/../shared/bench" "$ROOT/benches/harness"; do
  if [ -n "$d" ] && [ -f "$d/l4.sh" ]; then BENCH_DIR="$d"; break; fi
done
[ -f "$BENCH_DIR/l4.sh" ] || { echo "shared bench harness (l4.sh) not found: set BENCH_DIR" >&2; exit 2; }

if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
[ -x "$SWITCHYARD" ] || { echo "no switchyard binary at $SWITCHYARD" >&2; exit 2; }
export SWITCHYARD LB_ARGS="${LB_ARGS:-}"
export CANDIDATE_PORT="${CANDIDATE_PORT:-18011}"
# Single quotes: BENCH_LISTEN / BENCH_BACKENDS are exported by the harness to the candidate's
# shell (bulk phase: the iperf3 server; HTTP phase: 3 nginx origins, round robin).
# shellcheck disable=SC2016
export CANDIDATE_CMD='exec "$SWITCHYARD" lb --listen "$BENCH_LISTEN" --backends "$BENCH_BACKENDS" --policy round_robin $LB_ARGS'

echo "=== switchyard lb vs direct / haproxy / nginx-stream (harness: $BENCH_DIR) ==="
exec bash "$BENCH_DIR/l4.sh"
