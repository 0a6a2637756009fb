#!/usr/bin/env bash
# L7 gateway, side by side: runs the shared peer harness (haproxy + jwt_verify HS256/RS256,
# haproxy without JWT, nginx) with Switchyard's gateway in the candidate slot, once with HS256
# and once with RS256 tokens, then the composition benchmark (benches/l7-compose.sh).
#
#   benches/l7.sh                 # full run (~5 min), release build first
#   REPS=1 WRK_T=4 benches/l7.sh  # quicker
#   ALGS="HS256" SKIP_COMPOSE=1 benches/l7.sh
#
# Env: BENCH_DIR (shared harness, default ../shared/bench next to the repo, or /work/shared/bench),
#      SWITCHYARD (binary, default target/release/switchyard), CANDIDATE_GW_PORT (18311),
#      plus everything the shared harness reads (REPS, WRK_T, CONNS, TARGETS, BENCH_OUT).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-}"
for d in "$BENCH_DIR" "$ROOT/../shared/bench" "$ROOT/benches/harness"; do
  if [ -n "$d" ] && [ -f "$d/l7.sh" ]; then BENCH_DIR="$d"; break; fi
done
[ -f "$BENCH_DIR/l7.sh" ] || { echo "shared bench harness not found (set BENCH_DIR)" >&2; exit 2; }

if [ -z "${SWITCHYARD:-}" ] && [ -z "${GW_CMD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
export SWITCHYARD
# the gateway quick-mode command (GW_CMD=path/to/examples/gateway-quick benchmarks the crate alone)
export GW_CMD="${GW_CMD:-$SWITCHYARD gateway}"
export CANDIDATE_GW_PORT="${CANDIDATE_GW_PORT:-18311}"
# single quotes: the BENCH_* variables are exported by the harness to the candidate's shell
export CANDIDATE_GW_CMD='exec $GW_CMD --listen "$BENCH_LISTEN" --route "/users/=$BENCH_USERS_BACKEND" --route "/orders/=$BENCH_ORDERS_BACKEND" --jwt-alg "$BENCH_JWT_ALG" --jwt-secret "$BENCH_JWT_SECRET" --jwt-pubkey "$BENCH_JWT_PUBKEY"'

for alg in ${ALGS:-HS256 RS256}; do
  echo "=== Switchyard gateway with $alg tokens vs peers ==="
  CANDIDATE_GW_ALG="$alg" bash "$BENCH_DIR/l7.sh"
  # the peers only need to run once
  export TARGETS="${TARGETS_AFTER_FIRST:-haproxy-jwt-hs256 haproxy-jwt-rs256 candidate}"
done

if [ -z "${SKIP_COMPOSE:-}" ]; then
  BENCH_DIR="$BENCH_DIR" bash "$ROOT/benches/l7-compose.sh"
fi
