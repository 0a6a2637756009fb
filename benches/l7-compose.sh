#!/usr/bin/env bash
# Composition benchmark: GET /home fans out to three JSON origins (users, orders, cart) and
# merges the bodies; reported next to a single proxied route in the same run.
# Env: BENCH_DIR (shared harness), SWITCHYARD (binary) or GW_CMD, REPS, WRK_T, CONNS.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/work/shared/bench}"
. "$BENCH_DIR/lib.sh"
SWITCHYARD="${SWITCHYARD:-${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard}"
# the gateway quick-mode command (GW_CMD=path/to/examples/gateway-quick benchmarks the crate alone)
GW_CMD="${GW_CMD:-$SWITCHYARD gateway}"
WRK_T="${WRK_T:-8}"; CONNS="${CONNS:-64}"
GW_PORT=18321; PORTS=(18421 18422 18423); NAMES=(users orders cart)

bench_init l7-compose
mkdir -p "$WORK/www" "$WORK/tmp"
printf '{"id":"bench-user","name":"Bench","items":[1,2,3],"pad":"%s"}' "$(head -c 300 /dev/zero | tr '\0' 'x')" > "$WORK/www/part.json"
chmod 644 "$WORK/www/part.json"
for i in 0 1 2; do
  render "$TPL_DIR/nginx-backend.conf" "$WORK/${NAMES[$i]}.conf" WORK="$WORK" NAME="${NAMES[$i]}" \
    PORT="${PORTS[$i]}" LOCATION="rewrite ^ /part.json break;"
  start_nginx "${NAMES[$i]}" "$WORK/${NAMES[$i]}.conf"
  wait_tcp "${PORTS[$i]}"
done

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
SECRET="$(openssl rand -hex 32)"
h="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)"
p="$(printf '{"sub":"bench-user","exp":%d}' "$(( $(date +%s) + 86400 ))" | b64url)"
s="$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)"
TOKEN="$h.$p.$s"

start_gw() {
  # shellcheck disable=SC2086
  start_bg "$WORK/gw.log" $GW_CMD --listen "127.0.0.1:$GW_PORT" \
    --route "/users/=127.0.0.1:${PORTS[0]}" --route "/orders/=127.0.0.1:${PORTS[1]}" \
    --route "/cart/=127.0.0.1:${PORTS[2]}" --compose /home --jwt-alg HS256 --jwt-secret "$SECRET"
  GW_PID="$LAST_PID"
  wait_tcp "$GW_PORT" || { cat "$WORK/gw.log" >&2; return 1; }
}

start_gw
code="$(curl -s -m 5 -o "$WORK/home.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/home")"
echo "check: GET /home -> $code $(head -c 120 "$WORK/home.json")" | tee "$SUMMARY"
stop_pid "$GW_PID"; sleep 0.3
[ "$code" = 200 ] || { echo "FAIL: composition did not answer 200" | tee -a "$SUMMARY"; exit 1; }

cat "$TPL_DIR/l7.lua" | sed 's#local paths = .*#local paths = { "/home" }#' > "$WORK/home.lua"
sed 's#local paths = .*#local paths = { "/users/42", "/orders/42", "/cart/7" }#' "$TPL_DIR/l7.lua" > "$WORK/single.lua"
for rep in $(seq 1 "$REPS"); do
  for t in compose3 single; do
    start_gw
    c0=$(tree_ticks "$GW_PID")
    script="$WORK/home.lua"; [ "$t" = single ] && script="$WORK/single.lua"
    read -r rps p50 p99 err n2 < <(run_wrk "$WRK_T" "$CONNS" -H "Authorization: Bearer $TOKEN" -s "$script" "http://127.0.0.1:$GW_PORT/")
    c1=$(tree_ticks "$GW_PID")
    rss=$(tree_hwm_mib "$GW_PID")
    stop_pid "$GW_PID"; sleep 0.3
    record "$t" rps "$rep" "$rps"; record "$t" p50_ms "$rep" "$p50"; record "$t" p99_ms "$rep" "$p99"
    record "$t" errors "$rep" "$((err + n2))"; record "$t" rss_mib "$rep" "$rss"
    record "$t" us_per_req "$rep" "$(awk -v c=$((c1-c0)) -v h="$CLK_TCK" -v r="$rps" -v d="$WRK_T" 'BEGIN{print (r>0)? c/h*1e6/(r*d) : 0}')"
    log "rep $rep $t: rps=$rps p50=${p50}ms p99=${p99}ms errors/non2xx=$err/$n2"
  done
done
{
  echo
  echo "Composition: GET /home = 3 concurrent upstream calls merged (compose3) vs one proxied route (single); wrk -t2 -c$CONNS -d${WRK_T}s, $REPS reps"
  render_table compose3 "rps:req/s p50_ms:p50_ms p99_ms:p99_ms errors:errors+non2xx rss_mib:peak_RSS_MiB us_per_req:cpu_us/req" compose3 single
} | tee -a "$SUMMARY"
