#!/usr/bin/env bash
# Authoritative DNS, side by side: runs the shared peer harness (Knot, NSD, gdnsd, same zone, same
# number of UDP workers = nproc) with `switchyard dns` (quick mode) in the candidate slot, then the
# GSLB phase (benches/dns-gslb.sh: static vs GSLB-with-ECS answers from the same server).
#
#   benches/dns.sh                    # full run (~2.5 min), release build first
#   REPS=1 DNS_T=5 benches/dns.sh     # quicker
#   SKIP_GSLB=1 benches/dns.sh
#   DNSSEC=1 benches/dns.sh           # signed answers (DO=1) vs Knot's mod-onlinesign
#
# Env: BENCH_DIR (shared harness, default ../shared/bench next to the repo, or /work/shared/bench),
#      SWITCHYARD (binary, default target/release/switchyard), CANDIDATE_DNS_PORT (18505),
#      plus everything the shared harness reads (REPS, DNS_T, DNSPERF_ARGS, TARGETS, BENCH_OUT).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-}"
for d in "$BENCH_DIR" "$ROOT/../shared/bench" "$ROOT/benches/harness"; do
  if [ -n "$d" ] && [ -f "$d/dns.sh" ]; then BENCH_DIR="$d"; break; fi
done
[ -f "$BENCH_DIR/dns.sh" ] || { echo "shared bench harness not found (set BENCH_DIR)" >&2; exit 2; }

if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
export SWITCHYARD
export CANDIDATE_DNS_PORT="${CANDIDATE_DNS_PORT:-18505}"
# single quotes: the BENCH_* variables are exported by the harness to the candidate's shell
# BENCH_DNSSEC=1 (the harness's DNSSEC=1 run): sign online with a fresh ECDSA P-256 key
export CANDIDATE_DNS_CMD='KEY=(); if [ -n "${BENCH_DNSSEC:-}" ]; then K="$(mktemp -d)/bench.key"; "$SWITCHYARD" dnssec keygen "$BENCH_ZONE_NAME" --out "$K" >/dev/null; KEY=(--dnssec-key "$K"); fi; exec "$SWITCHYARD" dns --listen "$BENCH_LISTEN" --zone-file "$BENCH_ZONE_FILE" --origin "$BENCH_ZONE_NAME" --workers "$(nproc)" "${KEY[@]}"'

echo "=== Switchyard DNS (quick mode) vs Knot, NSD, gdnsd ==="
bash "$BENCH_DIR/dns.sh"

if [ -z "${SKIP_GSLB:-}" ]; then
  BENCH_DIR="$BENCH_DIR" bash "$ROOT/benches/dns-gslb.sh"
fi
