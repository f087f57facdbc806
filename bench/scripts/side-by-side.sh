#!/usr/bin/env bash
# GAX and Janus side by side: the same gax-loadgen load against each, on this machine, in one
# run. Writes the table and the comparison plot into bench/README.md and bench/side-by-side.png.
#
#   bench/scripts/side-by-side.sh            # the full ladder (~12 min on 2 cores)
#   QUICK=1 bench/scripts/side-by-side.sh    # one load per scenario (a smoke run, ~3 min)
#
# What it does:
#   1. builds release binaries (gax, gax-loadgen, gax-benchtable) and installs Janus (Debian's
#      package) when missing;
#   2. for each server: starts it pinned to CPU 0 (taskset), with one media worker for GAX and
#      Janus's VideoRoom only (bench/scripts/janus.sh), media on this host's first non-loopback
#      IPv4 address for both (Janus never uses loopback);
#   3. runs each scenario at each load with the generator pinned to CPU 1, 3 simulcast layers,
#      a ramp, 3 s to settle and a 6 s hold; every run leaves a JSON and a PNG in $OUT;
#   4. gax-benchtable writes the table (machine, versions, command first) into bench/README.md.
#
# Environment: OUT (results; default $CARGO_TARGET_DIR/side-by-side), HOLD (6s),
# BROADCAST_SIZES, MEETING_SIZES, ROOMS (many-rooms: rooms of 1 -> 4), SERVERS ("janus gax
# gax-nobwe": gax-nobwe is GAX with `--no-bwe`, no send-side estimate or pacer, as Janus).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gax-target}"
out="${OUT:-$CARGO_TARGET_DIR/side-by-side}"
hold="${HOLD:-6s}"
servers="${SERVERS:-janus gax gax-nobwe}"
if [ -n "${QUICK:-}" ]; then
  broadcast_sizes="${BROADCAST_SIZES:-20}"; meeting_sizes="${MEETING_SIZES:-4}"; rooms="${ROOMS:-5}"
else
  broadcast_sizes="${BROADCAST_SIZES:-25 50 100 200}"
  meeting_sizes="${MEETING_SIZES:-4 6 8 10}"
  rooms="${ROOMS:-5 10 20 40}"
fi
secret=side-by-side-secret-side-by-side-secret

if ! command -v janus >/dev/null; then
  echo "== installing Janus (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq janus >/dev/null
fi
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs: the server on one, the generator on the other" >&2; exit 1; }
ip=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n1)
[ -n "$ip" ] || { echo "no non-loopback IPv4 address: Janus needs one for media (../shared/RECIPES.md: a veth pair)" >&2; exit 1; }

echo "== building release binaries"
cargo build --release --quiet -p gax -p bench --bin gax --bin gax-loadgen --bin gax-benchtable
bin="$CARGO_TARGET_DIR/release"

rm -rf "$out"; mkdir -p "$out"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

wait_http() { # url
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "server did not answer at $1" >&2; return 1
}

start_server() { # gax | gax-nobwe | janus
  case "$1" in
    gax|gax-nobwe)
      rm -rf "$out/gax-data"
      taskset -c 0 "$bin/gax" serve --listen 127.0.0.1:18080 --data-dir "$out/gax-data" \
        --jwt-secret "$secret" --workers 1 --media-bind "$ip" \
        $([ "$1" = gax-nobwe ] && echo --no-bwe) >"$out/$1.log" 2>&1 &
      server_pid=$!; url=http://127.0.0.1:18080; wait_http "$url/healthz" ;;
    janus)
      taskset -c 0 "$root/bench/scripts/janus.sh" "$out/janus-config" "$ip" 18088 >"$out/janus.log" 2>&1 &
      server_pid=$!; url=http://127.0.0.1:18088/janus; wait_http "$url/info" ;;
  esac
}

load() { # server scenario size [rooms]
  local name="$1-$2-$3${4:+x$4}"
  local clients=$(( $3 * ${4:-1} ))
  [ "$2" = meeting ] && clients=$(( $3 * $3 ))
  # 15 ms between joins: joining is not what is measured. Ramp + settle + hold stay short so
  # the whole ladder fits in ~9 min (bench/README.md, "The 15-second window").
  local ramp=$(( clients * 15 ))ms
  echo "== $name"
  taskset -c 1 "$bin/gax-loadgen" --server "${1%%-*}" --label "$1" --url "$url" --jwt-secret "$secret" \
    --scenario "$2" --size "$3" ${4:+--rooms "$4"} --ramp "$ramp" --settle 3s --hold "$hold" \
    --server-pid "$server_pid" --out "$out/$name.json" --plot "$out/$name.png" \
    2> >(tee "$out/$name.log" >&2) || echo "   (run failed: see $out/$name.log)"
  sleep 2 # let the server settle between runs
}

for server in $servers; do
  start_server "$server"
  for n in $broadcast_sizes; do load "$server" broadcast "$n"; done
  for n in $meeting_sizes; do load "$server" meeting "$n"; done
  for r in $rooms; do load "$server" many-rooms 4 "$r"; done
  stop_server
done

{
  echo "Run on $(date -u +%Y-%m-%d) with \`bench/scripts/side-by-side.sh\`${QUICK:+ (QUICK=1)}: each server pinned to CPU 0 (\`taskset -c 0\`), the generator to CPU 1; 3 s to settle, then $hold measured per load; publishers send 3 simulcast layers (VP8, 30 fps; f: 3 x 1100-byte packets per frame, h: 1, q: 1 x 366 bytes) and Opus-sized audio (50 packets/s); players receive the top layer (GAX with estimation on starts them lower and moves up as the estimate allows)."
  echo
  echo "- machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -sr)"
  echo "- gax $(git -C "$root" rev-parse --short HEAD) (release build, \`--workers 1 --media-bind $ip\`; \`gax\` with bandwidth estimation and pacing on, the default; \`gax-nobwe\` with \`--no-bwe\`), $(rustc --version)"
  echo "- $(janus --version 2>/dev/null | head -n1) (Debian package; VideoRoom only, \`bench/scripts/janus.sh\`)"
  echo "- generator: gax-loadgen (webrtc-rs $(sed -n '/^name = "webrtc"$/{n;s/version = //;s/"//g;p;q}' "$root/Cargo.lock"))"
} >"$out/preamble.md"
"$bin/gax-benchtable" --readme "$root/bench/README.md" --preamble "$out/preamble.md" \
  --plot "$root/bench/side-by-side.png" "$out"/*.json
echo "== table written to bench/README.md, plot to bench/side-by-side.png, runs in $out"
