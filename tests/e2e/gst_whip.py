#!/usr/bin/python3
"""A GStreamer WHIP publisher (webrtcbin + libnice, the media stack of simple-whip-client).

Debian bookworm's `simple-whip-client` aborts at start on this machine: it links libsoup 2,
while GStreamer's nice/webrtc plugins pull in libsoup 3 (libnice -> gupnp-igd -> gupnp-1.6),
and libsoup refuses to share a process with both. This script does the same job with the same
GStreamer elements and Python's own HTTP client: offer with every candidate in the SDP (no
trickle), POST /whip/{room} with a bearer token, apply the answer, publish for DURATION
seconds (or until SIGTERM), DELETE the session.

webrtcbin keeps GStreamer 1.22's own DTLS certificate, an RSA one, as simple-whip-client
does: GAX verifies RSA client certificates (a patch it carries on dimpl, third_party/README.md).

Usage: gst_whip.py URL TOKEN DURATION_SECONDS
Prints one JSON line per event; exit status 0 when the session was created and deleted.
"""
import json
import signal
import sys
import urllib.error
import urllib.request
from urllib.parse import urljoin

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 "
         "! videoconvert ! queue ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60 "
         "! rtpvp8pay pt=96 picture-id-mode=15-bit ! queue "
         "! application/x-rtp,media=video,encoding-name=VP8,payload=96 ! pub.")
AUDIO = ("audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue "
         "! opusenc ! rtpopuspay pt=111 ! queue "
         "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! pub.")


def log(msg, **extra):
    print(json.dumps({"msg": msg, **extra}), flush=True)


def main():
    url, token, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    pipe = Gst.parse_launch(f"webrtcbin name=pub bundle-policy=max-bundle {VIDEO} {AUDIO}")
    pub = pipe.get_by_name("pub")
    loop = GLib.MainLoop()
    state = {"location": None, "ok": False, "offered": False}

    def fail(why):
        log("FAIL", why=why)
        loop.quit()

    def post_offer():
        offer = pub.get_property("local-description").sdp.as_text()
        log("offer", candidates=[x for x in offer.splitlines() if x.startswith("a=candidate")])
        req = urllib.request.Request(url, data=offer.encode(), method="POST", headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                answer, status = r.read().decode(), r.status
                state["location"] = urljoin(url, r.headers["Location"])
        except urllib.error.HTTPError as e:
            return fail(f"POST answered {e.code}: {e.read().decode(errors='replace')}")
        log("answer", status=status, location=state["location"])
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        pub.emit("set-remote-description", desc, Gst.Promise.new())
        GLib.timeout_add(int(duration * 1000), stop)
        return False

    def on_gathering(element, _pspec):
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(post_offer)

    def on_offer(promise, attempt):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply and reply.has_field("offer") else None
        if offer is None:
            # Asked before every stream had caps: ask again shortly.
            why = reply.to_string() if reply else "empty reply"
            if attempt >= 20:
                return fail(f"no offer: {why}")
            GLib.timeout_add(100, lambda: create_offer(attempt + 1) and False)
            return None
        pub.emit("set-local-description", offer, Gst.Promise.new())
        return None

    def create_offer(attempt):
        pub.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, attempt))
        return False

    def on_negotiation(_element):
        if not state["offered"]:
            state["offered"] = True
            GLib.idle_add(create_offer, 0)

    def on_ice_state(element, _pspec):
        log("ice", state=element.get_property("ice-connection-state").value_nick)

    def stop():
        if state["location"] is None:
            return fail("stopped before the session existed")
        req = urllib.request.Request(state["location"], method="DELETE",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                log("deleted", status=r.status)
                state["ok"] = r.status == 200
        except urllib.error.HTTPError as e:
            log("delete failed", status=e.code)
        loop.quit()
        return False

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            fail(f"pipeline error: {err.message} ({dbg})")

    pub.connect("on-negotiation-needed", on_negotiation)
    pub.connect("notify::ice-gathering-state", on_gathering)
    pub.connect("notify::ice-connection-state", on_ice_state)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    # SIGTERM (the test is done with us): end the session properly.
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int((duration + 30) * 1000), lambda: fail("timed out") or False)
    loop.run()
    pipe.set_state(Gst.State.NULL)
    log("PASS" if state["ok"] else "FAIL")
    sys.exit(0 if state["ok"] else 1)


if __name__ == "__main__":
    main()
