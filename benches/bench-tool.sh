#!/usr/bin/env bash
# Does `switchyard bench` measure the system and not itself? It runs side by side with the
# standard tools against the same servers on 127.0.0.1, interleaved, REPS times:
#   - wrk vs `switchyard bench http` against one nginx, keep-alive and `Connection: close`;
#   - dnsperf vs `switchyard bench dns` against one Knot, the same query file (UDP).
# For each: the load generated (requests/s) and the CPU seconds the load generator itself used
# (/usr/bin/time user+sys). The issue's bar: at least 0.9x the other tool's load for no more CPU.
#
#   benches/bench-tool.sh                  # REPS=3, T=10 s per run, CONNS=64
#   REPS=1 T=5 benches/bench-tool.sh       # quicker
#   INSTALL=1 benches/bench-tool.sh        # apt-get install nginx-light wrk dnsperf knot first
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/benches/harness/lib.sh"

T="${T:-10}"
CONNS="${CONNS:-64}"
DNS_CONNS="${DNS_CONNS:-256}"
DNSPERF_ARGS="${DNSPERF_ARGS:--c 4 -T 1 -q 256 -t 2}"
HTTP_PORT=18601
DNS_PORT=18602

if [ -n "${INSTALL:-}" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx-light wrk dnsperf knot
fi
for b in wrk dnsperf /usr/sbin/nginx /usr/sbin/knotd /usr/bin/time; do
  command -v "$b" >/dev/null || { echo "missing $b (INSTALL=1 installs it)" >&2; exit 2; }
done
if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi

bench_init bench-tool
print_versions nginx wrk dnsperf knot | tee "$SUMMARY"

# the servers under load
mkdir -p "$WORK/www" "$WORK/zones" "$WORK/knot/db"
printf 'hello from nginx\n' > "$WORK/www/index.html"
render "$TPL_DIR/nginx-backend.conf" "$WORK/origin.conf" WORK="$WORK" NAME=origin PORT="$HTTP_PORT" \
  LOCATION="index index.html;"
start_nginx origin "$WORK/origin.conf"
wait_tcp "$HTTP_PORT"
cp "$TPL_DIR/example.test.zone" "$WORK/zones/example.test.zone"
render "$TPL_DIR/knot.conf" "$WORK/knot.conf" WORK="$WORK" PORT="$DNS_PORT" NCPU="$(nproc)"
start_bg "$WORK/knot.log" /usr/sbin/knotd -c "$WORK/knot.conf"
wait_dns "$DNS_PORT" example.test
cp "$TPL_DIR/queries.txt" "$WORK/queries.txt"

# timed TARGET OUTFILE CMD...: runs CMD bounded in time, records its CPU seconds
timed() {
  local target="$1" out="$2"; shift 2
  timeout $((T + 30)) /usr/bin/time -f '%U %S' -o "$WORK/time.txt" "$@" > "$out" 2>&1 || true
  record "$target" cpu "$rep" "$(awk '{printf "%.2f", $1 + $2}' "$WORK/time.txt")"
}

# requests/s from a `switchyard bench --json` report (answered requests, errors included)
sy_rate() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.1f" % (r["requests"]/r["duration_s"]))' "$1"; }

URL="http://127.0.0.1:$HTTP_PORT/"
for rep in $(seq 1 "$REPS"); do
  log "rep $rep/$REPS: HTTP keep-alive"
  timed wrk-keepalive "$WORK/o" wrk -t 2 -c "$CONNS" -d "${T}s" --timeout 5s -s "$TPL_DIR/report.lua" "$URL"
  record wrk-keepalive rps "$rep" "$(awk '/^RESULT/{print $2}' "$WORK/o")"
  timed sy-keepalive "$WORK/o" "$SWITCHYARD" bench http --url "$URL" -c "$CONNS" --duration "${T}s" -q --json "$WORK/r.json"
  record sy-keepalive rps "$rep" "$(sy_rate "$WORK/r.json")"

  log "rep $rep/$REPS: HTTP Connection: close"
  timed wrk-close "$WORK/o" wrk -t 2 -c "$CONNS" -d "${T}s" --timeout 5s -H "Connection: close" -s "$TPL_DIR/report.lua" "$URL"
  record wrk-close rps "$rep" "$(awk '/^RESULT/{print $2}' "$WORK/o")"
  timed sy-close "$WORK/o" "$SWITCHYARD" bench http --url "$URL" --close -c "$CONNS" --duration "${T}s" -q --json "$WORK/r.json"
  record sy-close rps "$rep" "$(sy_rate "$WORK/r.json")"

  log "rep $rep/$REPS: DNS"
  # shellcheck disable=SC2086
  timed dnsperf "$WORK/o" dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$WORK/queries.txt" -l "$T" $DNSPERF_ARGS
  record dnsperf rps "$rep" "$(awk '/Queries per second:/{print $4}' "$WORK/o")"
  timed sy-dns "$WORK/o" "$SWITCHYARD" bench dns --server "127.0.0.1:$DNS_PORT" --queries "$WORK/queries.txt" \
    -c "$DNS_CONNS" --duration "${T}s" -q --json "$WORK/r.json"
  record sy-dns rps "$rep" "$(sy_rate "$WORK/r.json")"
done

{
  echo
  echo "load generators on $(nproc) cores shared with the server; T=${T}s, HTTP $CONNS connections, dnsperf $DNSPERF_ARGS, bench dns -c $DNS_CONNS"
  for pair in "wrk-keepalive sy-keepalive" "wrk-close sy-close" "dnsperf sy-dns"; do
    # shellcheck disable=SC2086
    set -- $pair
    echo
    render_table "$1" "rps:requests/s cpu:generator_CPU_s" "$1" "$2"
  done
} | tee -a "$SUMMARY"
log "summary: $SUMMARY"
