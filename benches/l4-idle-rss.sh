#!/usr/bin/env bash
# Memory with many idle proxied connections: RSS of `switchyard lb` next to HAProxy (mode tcp)
# and nginx stream, each holding N (default 10000) idle client connections to one backend.
#
#   benches/l4-idle-rss.sh            # N=10000 (or less if the fd limit is lower)
#   N=2000 benches/l4-idle-rss.sh
#
# Env: SWITCHYARD (binary; default target/release/switchyard, built if missing), N, PORT_BASE (28500),
#      LB_ARGS (extra quick-mode flags, e.g. "--io-engine epoll").
# Needs python3 (clients and backend), haproxy, nginx with the stream module. 127.0.0.1 only;
# only processes started here are stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# a balancer holds 2 fds per proxied connection: stay under this process's fd limit
MAXN=$(( ($(ulimit -n) - 1000) / 2 ))
N="${N:-$(( MAXN < 10000 ? MAXN : 10000 ))}"
PB="${PORT_BASE:-28500}"
BACKEND_PORT=$((PB + 1)); LB_PORT=$((PB + 2))
if [ -z "${SWITCHYARD:-}" ]; then
  (cd "$ROOT" && cargo build --release -q --bin switchyard)
  SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/l4-rss.XXXXXX")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# backend: accepts and holds connections (asyncio, one process)
cat > "$WORK/backend.py" <<PY
import asyncio, resource
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
async def h(r, w):
    await r.read()
    w.close()
async def main():
    s = await asyncio.start_server(h, "127.0.0.1", $BACKEND_PORT, backlog=4096)
    async with s: await s.serve_forever()
asyncio.run(main())
PY
# clients: open N connections to the balancer, send one byte each, wait for "go" on stdin
cat > "$WORK/clients.py" <<'PY'
import socket, sys, resource, time
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x")
    socks.append(s)
print("open", len(socks), flush=True)
sys.stdin.readline()
PY
python3 "$WORK/backend.py" & PIDS+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$BACKEND_PORT) 2>/dev/null && break; sleep 0.1; done

tree_rss_mib() {  # sum of VmRSS over a process and its children
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    total=$((total + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "scale=1; $total/1024" | bc
}

measure() {  # $1 name, rest = command
  local name="$1"; shift
  "$@" >"$WORK/$name.log" 2>&1 & local bp=$!; PIDS+=($bp)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$LB_PORT) 2>/dev/null && break; sleep 0.1; done
  local before; before=$(tree_rss_mib "$bp")
  coproc CL { python3 "$WORK/clients.py" "$LB_PORT" "$N"; }
  read -r _ opened <&"${CL[0]}"
  sleep 1
  local after; after=$(tree_rss_mib "$bp")
  printf '%-14s idle_conns=%-6s rss_before=%6s MiB  rss_with_conns=%6s MiB  per_conn=%s KiB\n' \
    "$name" "$opened" "$before" "$after" "$(echo "scale=2; ($after-$before)*1024/$opened" | bc)"
  echo go >&"${CL[1]}"; wait "$CL_PID" 2>/dev/null || true
  kill "$bp" 2>/dev/null || true; wait "$bp" 2>/dev/null || true
  sleep 0.5
}

cat > "$WORK/haproxy.cfg" <<CFG
global
  maxconn $((N + 50))
  maxpipes 128
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  option splice-auto
frontend fe
  bind 127.0.0.1:$LB_PORT
  default_backend be
backend be
  server s1 127.0.0.1:$BACKEND_PORT
CFG
cat > "$WORK/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes auto;
worker_rlimit_nofile 65536;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 32768; }
stream { server { listen 127.0.0.1:$LB_PORT reuseport backlog=4096; proxy_pass 127.0.0.1:$BACKEND_PORT; proxy_timeout 300s; } }
CFG

echo "RSS with $N idle proxied connections (one byte sent each), $(nproc) cores"
measure switchyard "$SWITCHYARD" lb --listen "127.0.0.1:$LB_PORT" --backend "127.0.0.1:$BACKEND_PORT" --max-connections $((N * 2)) ${LB_ARGS:-}
command -v haproxy >/dev/null && measure haproxy haproxy -db -f "$WORK/haproxy.cfg"
command -v nginx >/dev/null && measure nginx-stream nginx -c "$WORK/nginx.conf"
