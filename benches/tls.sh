#!/usr/bin/env bash
# TLS termination, side by side: runs the shared peer harness (HAProxy + OpenSSL, nginx) with
# Switchyard's gateway in the candidate slot: quick mode serving HTTPS (rustls on aws-lc-rs,
# HTTP/2 by ALPN) with the harness's ECDSA P-256 chain, every path proxied to the origin.
#
#   benches/tls.sh                  # full run, release build first
#   REPS=1 WRK_T=4 benches/tls.sh   # quicker
#
# Env: BENCH_DIR (shared harness, default ../shared/bench next to the repo, or the vendored copy
#      in benches/harness), SWITCHYARD (binary, default target/release/switchyard),
#      CANDIDATE_TLS_PORT (18621), plus what the harness reads (REPS, WRK_T, CONNS, TARGETS).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-}"
for d in "$BENCH_DIR" "$ROOT/../shared/bench" "$ROOT/benches/harness"; do
  if [ -n "$d" ] && [ -f "$d/tls.sh" ]; then BENCH_DIR="$d"; break; fi
done
[ -f "$BENCH_DIR/tls.sh" ] || { echo "shared bench harness not found (set BENCH_DIR)" >&2; exit 2; }

if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
export SWITCHYARD
export CANDIDATE_TLS_PORT="${CANDIDATE_TLS_PORT:-18621}"
# single quotes: the BENCH_* variables are exported by the harness to the candidate's shell
export CANDIDATE_TLS_CMD='exec "$SWITCHYARD" gateway --listen "$BENCH_LISTEN" --route "/=$BENCH_BACKEND" --public --tls-cert "$BENCH_CERT" --tls-key "$BENCH_KEY"'
echo "=== Switchyard gateway (TLS) vs peers ==="
exec bash "$BENCH_DIR/tls.sh"
