#!/usr/bin/env bash
# Starts Janus (Debian's package, 1.1.x) as a peer SFU for the side-by-side benchmark and the
# loadgen test: only the VideoRoom plugin, only the plain-HTTP API (on 127.0.0.1:PORT, base
# path /janus), media on IP. Janus never uses loopback for media, so IP must be a real
# interface's address (this host's eth0; on a loopback-only host make a veth pair, see
# ../shared/RECIPES.md). Writes its configuration to DIR, then runs Janus in the foreground
# (exec: the caller's pid is Janus's pid).
#
#   bench/scripts/janus.sh DIR IP [PORT]
set -euo pipefail
dir=${1:?usage: janus.sh DIR IP [PORT]}
ip=${2:?usage: janus.sh DIR IP [PORT]}
port=${3:-8088}

command -v janus >/dev/null || { echo "janus is not installed (apt-get install janus)" >&2; exit 1; }
lib=$(dirname "$(ls -d /usr/lib/*/janus/plugins | head -n1)")
[ -d "$lib/plugins" ] || { echo "no Janus plugin folder under /usr/lib/*/janus" >&2; exit 1; }
# Every plugin, transport, event handler and logger but the two we use, by file name.
others() { (cd "$lib/$1" 2>/dev/null && ls ./*.so 2>/dev/null | sed 's#^\./##' | grep -v -e "$2" | paste -sd, -); }

mkdir -p "$dir"
cat > "$dir/janus.jcfg" <<JCFG
general: {
	configs_folder = "$dir"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	debug_level = 3
	debug_colors = false
	session_timeout = 60
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	ice_enforce_list = "$ip"
	ignore_mdns = true
	full_trickle = false
}
plugins: {
	disable = "$(others plugins libjanus_videoroom.so)"
}
transports: {
	disable = "$(others transports libjanus_http.so)"
}
events: {
	broadcast = false
	disable = "$(others events '^$')"
}
loggers: {
	disable = "$(others loggers '^$')"
}
JCFG
cat > "$dir/janus.transport.http.jcfg" <<JCFG
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = $port
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
JCFG
cat > "$dir/janus.plugin.videoroom.jcfg" <<JCFG
general: {
}
JCFG
exec janus -F "$dir" -C "$dir/janus.jcfg"
