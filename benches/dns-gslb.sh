#!/usr/bin/env bash
# GSLB answers vs static answers from the same Switchyard DNS server, dnsperf over UDP with an
# EDNS Client Subnet option on every query (81.2.69.0/24, a GB network in the MaxMind test
# database): the issue's target is GSLB-with-ECS within 10% of static answers' speed.
#
# DNSSEC=1 signs the zone and sets DO on every query.
# The server runs `switchyard run --config <world> --only dns` (override with GSLB_SERVER_CMD,
# which gets CFG in its environment). Uses port 18506, stops only the PIDs it started.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-}"
for d in "$BENCH_DIR" "$ROOT/../shared/bench" "$ROOT/benches/harness"; do
  if [ -n "$d" ] && [ -f "$d/lib.sh" ]; then BENCH_DIR="$d"; break; fi
done
. "$BENCH_DIR/lib.sh"

PORT="${GSLB_PORT:-18506}"
DNS_T="${DNS_T:-10}"
DNSPERF_ARGS="${DNSPERF_ARGS:--c 4 -T 1 -q 256 -t 2}"
ECS_OPT="8:00011800510245"   # family 1, source /24, scope 0, 81.2.69
if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
export SWITCHYARD
GSLB_SERVER_CMD="${GSLB_SERVER_CMD:-exec \"\$SWITCHYARD\" run --config \"\$CFG\" --only dns}"

bench_init dns-gslb
cp "$TPL_DIR/example.test.zone" "$WORK/example.test.zone"
# DNSSEC=1: the zone is signed online and every query carries DO=1
KEYS=""
if [ -n "${DNSSEC:-}" ]; then
  "$SWITCHYARD" dnssec keygen example.test --out "$WORK/bench.key" >/dev/null
  KEYS="dnssec_keys = [\"$WORK/bench.key\"]"
  DNSPERF_ARGS="$DNSPERF_ARGS -D"
fi
export CFG="$WORK/world.toml"
cat > "$CFG" <<TOML
[geo]
country_db = "builtin:maxmind-test-country"

[[regions]]
name = "us-east"
vips = ["127.0.1.1"]
continents = ["NA", "SA"]
failover = ["eu-west"]
default = true
  [[regions.azs]]
  name = "us-east-a"

[[regions]]
name = "eu-west"
vips = ["127.0.2.1"]
continents = ["EU", "AF", "AS", "OC"]
failover = ["us-east"]
  [[regions.azs]]
  name = "eu-west-a"

[dns]
listen = ["127.0.0.1:$PORT"]
workers = $(nproc)
  [[dns.zones]]
  origin = "example.test."
  file = "$WORK/example.test.zone"
  $KEYS
  [[dns.gslb]]
  name = "geo.example.test."
  policy = "geo"
  regions = ["us-east", "eu-west"]
  ttl = "30s"
TOML
printf 'www.example.test A\n' > "$WORK/static.txt"
printf 'geo.example.test A\n' > "$WORK/gslb.txt"

start_bg "$WORK/server.log" bash -c "$GSLB_SERVER_CMD"
SRV_PID="$LAST_PID"
wait_dns "$PORT" example.test || { cat "$WORK/server.log" >&2; exit 1; }
got="$(dig +short -p "$PORT" @127.0.0.1 geo.example.test A +subnet=81.2.69.0/24)"
echo "probe: geo.example.test +subnet=81.2.69.0/24 -> $got (want 127.0.2.1)" | tee -a "$SUMMARY"

for rep in $(seq 1 "$REPS"); do
  for kind in static gslb; do
    c0=$(tree_ticks "$SRV_PID")
    # shellcheck disable=SC2086
    out="$(timeout $((DNS_T + 20)) dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/$kind.txt" -l "$DNS_T" -E "$ECS_OPT" $DNSPERF_ARGS 2>&1 || true)"
    c1=$(tree_ticks "$SRV_PID")
    read -r qps lost < <(awk '/Queries per second:/ {q=$4} /Queries lost:/ {l=$3} END {printf "%s %s\n", q+0, l+0}' <<<"$out")
    record "$kind" qps "$rep" "$qps"
    record "$kind" lost "$rep" "$lost"
    record "$kind" us_per_q "$rep" "$(awk -v c=$((c1-c0)) -v h="$CLK_TCK" -v q="$qps" -v d="$DNS_T" 'BEGIN{print (q>0)? c/h*1e6/(q*d) : 0}')"
    log "rep $rep $kind: qps=$qps lost=$lost"
  done
done
stop_pid "$SRV_PID"
{
  echo
  echo "GSLB vs static answers, same server, dnsperf -l $DNS_T $DNSPERF_ARGS -E $ECS_OPT, $REPS reps"
  echo
  render_table static "qps:queries/s lost:lost_queries us_per_q:cpu_us/query" static gslb
} | tee -a "$SUMMARY"
log "summary: $SUMMARY"
