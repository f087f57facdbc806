#!/usr/bin/env bash
# The soak run of issue 14: one release `gax serve`, 1,000 messenger sessions (sending a message
# every 5 s, typing before each, marking reads) and 50 media sessions (10 rooms of 1 publisher
# with 3-layer simulcast + 4 players) from gax-loadgen, held for 10 minutes. Writes the run's
# JSON and a plot of every second (packets, latency, server CPU and RSS) to $OUT and prints
# the messenger summary; fails if an acked message is lost or a session errs or drops.
#
#   bench/scripts/soak.sh                      # 10 minutes (HOLD=10m), ~12 min in all
#   HOLD=30s CHAT=100 bench/scripts/soak.sh    # a short one
#
# The server runs with sign-ups unlimited (1,000 accounts from one address; the default is 10
# an hour) and 5,000 connections per address; every other limit is at its default.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gax-target}"
out="${OUT:-$CARGO_TARGET_DIR/soak}"
hold="${HOLD:-10m}"
chat="${CHAT:-1000}"
secret=soak-secret-soak-secret-soak-secret-000
mkdir -p "$out"
cargo build --release --bin gax -q
cargo build --release -p bench --bin gax-loadgen -q
bin="$CARGO_TARGET_DIR/release"
data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
"$bin/gax" serve --listen "127.0.0.1:$port" --media-port 0 --data-dir "$data" \
  --jwt-secret "$secret" --rate-limit signups=off --max-connections-per-ip 5000 \
  >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
echo "== soak: $chat messenger sessions + 50 media sessions, hold $hold, server pid $server"
set +e
"$bin/gax-loadgen" --url "http://127.0.0.1:$port" --jwt-secret "$secret" \
  --scenario many-rooms --rooms 10 --size 4 --fps 15 \
  --chat-sockets "$chat" --chat-every 5s --ramp 20s --settle 10s --hold "$hold" \
  --server-pid "$server" --label soak --out "$out/soak.json" --plot "$out/soak.png" \
  2>"$out/loadgen.log"
status=$?
set -e
grep -E "^messenger:|sessions ended" "$out/loadgen.log" || true
python3 - "$out/soak.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["seconds"]
rss = [x["server_rss_mb"] for x in s if x.get("server_rss_mb") is not None]
cpu = [x["server_cpu_pct"] for x in s if x.get("server_cpu_pct") is not None]
q = max(1, len(rss) // 10)
print(f"seconds held: {len(s)}; server RSS MB: first 10% avg {sum(rss[:q])/q:.0f}, "
      f"last 10% avg {sum(rss[-q:])/q:.0f}, max {max(rss):.0f}; server CPU avg {sum(cpu)/len(cpu):.0f}%")
print(f"media: {r['packets_per_s']:.0f} packets/s, loss {r['loss_pct']:.3f}%, p99 {r['p99_us']} us")
print("messenger:", json.dumps(r.get("chat")))
PY
exit $status
