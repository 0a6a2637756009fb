#!/usr/bin/env bash
# TLS figures the shared harness (benches/tls.sh) does not take, side by side with HAProxy
# (OpenSSL as packaged) and nginx, same ECDSA P-256 certificate, same origin (nginx, 1 KiB):
#   full handshakes/s     : `switchyard bench tls` (a new connection, a full TLS handshake and one
#                           request per connection), with server CPU per handshake
#   resumed handshakes/s  : the same with `--resume` (TLS 1.3 tickets / session cache), and the
#                           share that really resumed
#   idle memory           : RSS growth per idle TLS connection (N connections handshaken and held)
#   JWT over TLS          : HTTPS keep-alive req/s (wrk) with HS256 bearer tokens verified, HAProxy
#                           `jwt_verify` against the gateway (nginx has no JWT check: not run)
# Rotated order in every rep, medians and min..max, like the harness.
#
#   benches/tls-extra.sh                    # REPS=4, release build first
#   REPS=1 T=4 N=500 benches/tls-extra.sh   # quicker
#
# Env: BENCH_DIR (shared harness), SWITCHYARD (binary), REPS (4), T (load seconds, 8), CONNS
#      (64), N (idle connections, 2000), TARGETS (haproxy nginx switchyard).
# Everything runs on 127.0.0.1; only processes started here are stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-}"
for d in "$BENCH_DIR" "$ROOT/../shared/bench" "$ROOT/benches/harness"; do
  if [ -n "$d" ] && [ -f "$d/lib.sh" ]; then BENCH_DIR="$d"; break; fi
done
[ -f "$BENCH_DIR/lib.sh" ] || { echo "shared bench harness not found (set BENCH_DIR)" >&2; exit 2; }
if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
REPS="${REPS:-4}"
# shellcheck source=/dev/null
. "$BENCH_DIR/lib.sh"
T="${T:-8}"
CONNS="${CONNS:-64}"
N="${N:-2000}"
TARGETS="${TARGETS:-haproxy nginx switchyard}"
TLS_PORT=18651
ORIGIN_PORT=18661
SECRET="tls-extra-bench-secret-0123456789abcdef"

bench_init tls-extra
print_versions haproxy nginx wrk | tee "$SUMMARY"
"$SWITCHYARD" --version | tee -a "$SUMMARY"

openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/ca.key" -subj /CN=bench-ca -days 2 -out "$WORK/ca.crt" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/leaf.ecparam" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$WORK/leaf.ecparam" -out "$WORK/leaf.key" 2>/dev/null
openssl req -new -key "$WORK/leaf.key" -subj /CN=bench.test -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:bench.test,IP:127.0.0.1\n' > "$WORK/ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/ext" -out "$WORK/leaf.crt" 2>/dev/null
cat "$WORK/leaf.crt" "$WORK/ca.crt" > "$WORK/chain.crt"
cat "$WORK/chain.crt" "$WORK/leaf.key" > "$WORK/haproxy.pem"

# an HS256 token HAProxy and the gateway both accept (alg, signature, exp)
TOKEN="$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
now = int(time.time())
p = b(json.dumps({"sub": "bench-user", "scope": "users orders", "iat": now, "exp": now + 86400}).encode())
s = b(hmac.new(sys.argv[1].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PY
)"

mkdir -p "$WORK/www" "$WORK/tmp"
head -c 1024 /dev/zero | tr '\0' 'a' > "$WORK/www/1k"; chmod 644 "$WORK/www/1k"
render "$TPL_DIR/nginx-backend.conf" "$WORK/origin.conf" WORK="$WORK" NAME=origin PORT="$ORIGIN_PORT" LOCATION="rewrite ^ /1k break;"
start_nginx origin "$WORK/origin.conf"
wait_tcp "$ORIGIN_PORT"

cat > "$WORK/haproxy-jwt.cfg" <<EOF
global
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.2
  tune.ssl.cachesize 20000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend tls
  bind 127.0.0.1:$TLS_PORT ssl crt $WORK/haproxy.pem alpn h2,http/1.1
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.jwt_alg) -m str HS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.jwt_alg,"$SECRET") -m int 1 }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  default_backend origin
backend origin
  server o1 127.0.0.1:$ORIGIN_PORT
EOF

start_target() {   # $1 = target, $2 = jwt|plain -> SRV_PID
  case "$1" in
    haproxy)
      if [ "$2" = jwt ]; then cfg="$WORK/haproxy-jwt.cfg"; else
        render "$TPL_DIR/haproxy-tls.cfg" "$WORK/haproxy.cfg" LISTEN="$TLS_PORT" PEM="$WORK/haproxy.pem" ORIGIN="127.0.0.1:$ORIGIN_PORT"
        cfg="$WORK/haproxy.cfg"; fi
      start_bg "$WORK/haproxy.log" /usr/sbin/haproxy -db -f "$cfg" ;;
    nginx)
      render "$TPL_DIR/nginx-tls.conf" "$WORK/nginx-tls.conf" WORK="$WORK" LISTEN="$TLS_PORT" \
        CERT="$WORK/chain.crt" KEY="$WORK/leaf.key" ORIGIN="127.0.0.1:$ORIGIN_PORT"
      start_nginx nginx-tls "$WORK/nginx-tls.conf" ;;
    switchyard)
      local jwt=(--public)
      [ "$2" = jwt ] && jwt=(--jwt-alg HS256 --jwt-secret "$SECRET")
      start_bg "$WORK/switchyard.log" "$SWITCHYARD" gateway --listen "127.0.0.1:$TLS_PORT" \
        --route "/=127.0.0.1:$ORIGIN_PORT" \
        --tls-cert "$WORK/chain.crt" --tls-key "$WORK/leaf.key" "${jwt[@]}" ;;
  esac
  SRV_PID="$LAST_PID"
  wait_tcp "$TLS_PORT" || { echo "$1 did not start" >&2; cat "$WORK"/*.log >&2 || true; return 1; }
}

# prints: ok_per_s resumed_share
bench_tls() {   # extra args for `switchyard bench tls`
  "$SWITCHYARD" bench tls --url "https://bench.test:$TLS_PORT/1k" --connect-to "127.0.0.1:$TLS_PORT" \
    --cacert "$WORK/ca.crt" -c "$CONNS" --duration "${T}s" -q --json "$WORK/b.json" "$@" >/dev/null
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); ok=max(r["ok"],1); print("%.1f %.3f %d" % (r["throughput"], (r.get("tls_resumed") or 0)/ok, r["requests"]-r["ok"]))' "$WORK/b.json"
}

rss_kib() {   # current RSS of a process tree, KiB
  local t=0 p
  for p in $(proc_tree "$1"); do
    t=$((t + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# holds N idle TLS connections (handshake done, one byte of nothing sent) until stdin closes
cat > "$WORK/idle.py" <<'PY'
import asyncio, resource, ssl, sys
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
port, n, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
async def main():
    conns, sem = [], asyncio.Semaphore(64)
    async def one(i):
        async with sem:
            src = ("127.0.0.%d" % (2 + i % 200), 0)
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                 server_hostname="bench.test", local_addr=src)
            conns.append(w)
    res = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    bad = sum(1 for x in res if isinstance(x, Exception))
    print(len(conns), bad, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
PY

for rep in $(seq 1 "$REPS"); do
  for t in $(rotated "$rep" $TARGETS); do
    start_tls_ok=1; start_target "$t" plain || start_tls_ok=0
    [ "$start_tls_ok" = 1 ] || continue
    c0=$(tree_ticks "$SRV_PID")
    read -r full _ err_f < <(bench_tls)
    c1=$(tree_ticks "$SRV_PID")
    read -r resumed share err_r < <(bench_tls --resume)
    c2=$(tree_ticks "$SRV_PID")
    # idle memory: settle, RSS, hold N connections, RSS
    sleep 1
    r0=$(rss_kib "$SRV_PID")
    coproc IDLE { python3 "$WORK/idle.py" "$TLS_PORT" "$N" "$WORK/ca.crt"; }
    read -r held bad <&"${IDLE[0]}" || { held=0; bad=$N; }
    sleep 1
    r1=$(rss_kib "$SRV_PID")
    exec {IDLE[1]}>&-; wait "$IDLE_PID" 2>/dev/null || true
    stop_pid "$SRV_PID"; sleep 0.3
    record "$t" full_s "$rep" "$full"
    record "$t" resumed_s "$rep" "$resumed"
    record "$t" resumed_share "$rep" "$share"
    record "$t" us_full "$rep" "$(awk -v c=$((c1-c0)) -v h="$CLK_TCK" -v r="$full" -v d="$T" 'BEGIN{print (r>0)? c/h*1e6/(r*d) : 0}')"
    record "$t" us_resumed "$rep" "$(awk -v c=$((c2-c1)) -v h="$CLK_TCK" -v r="$resumed" -v d="$T" 'BEGIN{print (r>0)? c/h*1e6/(r*d) : 0}')"
    record "$t" idle_kib "$rep" "$(awk -v a="$r0" -v b="$r1" -v n="$held" 'BEGIN{print (n>0)? (b-a)/n : 0}')"
    record "$t" errs "$rep" "$((err_f + err_r + bad))"
    log "rep $rep $t: full=$full/s resumed=$resumed/s (share $share) idle=$held conns ${r0}->${r1} KiB, errors $err_f/$err_r/$bad"
    if [ "$t" != nginx ]; then
      start_target "$t" jwt
      url="https://127.0.0.1:$TLS_PORT/users/1"
      bad_code=$(curl -s -o /dev/null -w '%{http_code}' -k -H "Authorization: Bearer x.y.z" "$url" || true)
      c0=$(tree_ticks "$SRV_PID")
      read -r rps _ p99 err_k n2_k < <(run_wrk "$T" "$CONNS" -H "Authorization: Bearer $TOKEN" "$url")
      c1=$(tree_ticks "$SRV_PID")
      stop_pid "$SRV_PID"; sleep 0.3
      record "$t" jwt_rps "$rep" "$rps"
      record "$t" jwt_p99 "$rep" "$p99"
      record "$t" jwt_us "$rep" "$(awk -v c=$((c1-c0)) -v h="$CLK_TCK" -v r="$rps" -v d="$T" 'BEGIN{print (r>0)? c/h*1e6/(r*d) : 0}')"
      record "$t" jwt_errs "$rep" "$((err_k + n2_k))"
      log "rep $rep $t JWT over TLS: $rps req/s p99 ${p99}ms (a forged token got $bad_code)"
    fi
  done
done

{
  echo
  echo "TLS extra: ECDSA P-256; switchyard bench tls -c$CONNS ${T}s (full, --resume); $N idle TLS connections; wrk -t2 -c$CONNS keep-alive HS256 JWT over TLS; $REPS rotated reps; $(nproc) cores shared by client, server and origin"
  echo
  render_table haproxy "full_s:full_hs/s us_full:cpu_us/full resumed_s:resumed_hs/s us_resumed:cpu_us/resumed resumed_share:resumed_share" $TARGETS
  echo
  render_table haproxy "idle_kib:KiB/idle_tls_conn errs:errors" $TARGETS
  echo
  render_table haproxy "jwt_rps:jwt_tls_req/s jwt_p99:jwt_p99_ms jwt_us:cpu_us/req jwt_errs:errors" haproxy switchyard
} | tee -a "$SUMMARY"
log "summary: $SUMMARY"
