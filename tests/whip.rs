//! WHIP ingest (`POST /whip/{room}`, `DELETE` on the session URL) against a real `gax serve`:
//! the success path with a real WebRTC offer, and every refusal with its status; sessions are
//! freed on DELETE and when their media never connects; and interop: Debian's
//! `simple-whip-client` (GStreamer) publishes, and a browser in the room and a WHEP player decode
//! it.

mod common;

use std::time::{Duration, Instant};

use common::{http_request, Gax};
use str0m::media::{Direction, MediaKind};

fn offer() -> String {
    common::sdp::publisher()
}

fn post(
    gax: &Gax,
    room: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    http_request(
        gax.http,
        "POST",
        &format!("/whip/{room}"),
        token,
        ct,
        body.as_bytes(),
    )
    .unwrap()
}

fn delete(gax: &Gax, path: &str, token: Option<&str>) -> u16 {
    http_request(gax.http, "DELETE", path, token, None, b"")
        .unwrap()
        .0
}

/// The live media sessions on every worker.
fn sessions(gax: &Gax) -> u64 {
    gax.metric("gax_media_sessions")
}

fn wait_sessions(gax: &Gax, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while sessions(gax) != n {
        assert!(
            Instant::now() < deadline,
            "{} media sessions, expected {n}",
            sessions(gax)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One refusal of a WHIP/WHEP request: the expected status and a JSON error body (`error`,
/// `message`); an offer with only unsupported codecs, or unbundled m-lines, says so.
fn assert_refused(what: &str, status: u16, expected: u16, text: &str) {
    assert_eq!(status, expected, "{what}: {text}");
    if what == "unsupported codecs" {
        assert!(text.contains("none of the offered media"), "{what}: {text}");
    }
    if what == "several m-lines without BUNDLE" {
        assert!(text.contains("must bundle them"), "{what}: {text}");
    }
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON error body");
    assert!(
        json["error"].is_string() && json["message"].is_string(),
        "{what}: {json}"
    );
}

fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .expect("a Location header")
}

#[test]
fn a_whip_publisher_joins_and_is_freed_on_delete() {
    let gax = Gax::start(&[]);
    let token = gax.token(&["--room", "stage", "--identity", "obs", "--name", "OBS"]);
    let (status, head, answer) = post(
        &gax,
        "stage",
        Some(&token),
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(status, 201, "{head}\n{answer}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/sdp"),
        "{head}"
    );
    assert!(
        answer.starts_with("v=0") && answer.contains("m=video") && answer.contains("a=ice-lite")
    );
    let url = location(&head);
    assert!(url.starts_with("/whip/stage/"), "{url}");
    wait_sessions(&gax, 1, Duration::from_secs(2));

    // No trickle ICE: PATCH is 405 with Allow: DELETE (RFC 9725), in JSON, session untouched.
    let (status, head, body) = http_request(
        gax.http,
        "PATCH",
        &url,
        Some(&token),
        Some("application/trickle-ice-sdpfrag"),
        b"a=candidate:1 1 udp 1 192.0.2.9 9 typ host\r\n",
    )
    .unwrap();
    assert_eq!(status, 405, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("allow: delete"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(json["error"], "trickle_not_supported", "{json}");
    wait_sessions(&gax, 1, Duration::from_secs(1));

    // Only its creator may end it.
    let other = gax.token(&["--room", "stage", "--identity", "mallory"]);
    assert_eq!(delete(&gax, &url, Some(&other)), 403);
    assert_eq!(delete(&gax, &url, None), 401);
    assert_eq!(
        delete(&gax, "/whip/stage/p999-0000000000000000", Some(&token)),
        404
    );
    assert_eq!(delete(&gax, &url, Some(&token)), 200);
    wait_sessions(&gax, 0, Duration::from_secs(5));
    assert_eq!(delete(&gax, &url, Some(&token)), 404, "gone");
}

#[test]
fn a_whip_session_whose_media_never_connects_is_freed() {
    let gax = Gax::start(&["--media-timeout", "1s"]);
    let token = gax.token(&["--room", "stage", "--identity", "obs"]);
    let (status, head, _) = post(
        &gax,
        "stage",
        Some(&token),
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(status, 201);
    wait_sessions(&gax, 1, Duration::from_secs(2));
    wait_sessions(&gax, 0, Duration::from_secs(10));
    assert_eq!(delete(&gax, &location(&head), Some(&token)), 404);
}

#[test]
fn bad_whip_requests_get_clear_statuses_and_hold_nothing() {
    let gax = Gax::start(&[]);
    let token = gax.token(&["--room", "stage", "--identity", "obs"]);
    let viewer = gax.token(&["--room", "stage", "--identity", "v", "--no-publish"]);
    let elsewhere = gax.token(&["--room", "other", "--identity", "x"]);
    let sdp = offer();
    let no_media = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
    // (token, content type, body, expected status, what)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a str, u16, &'a str);
    let g722 = only_unsupported_codecs(&sdp);
    // Audio and video without their BUNDLE group: GAX runs one transport per peer.
    let unbundled: String = sdp
        .lines()
        .filter(|l| !l.starts_with("a=group:"))
        .flat_map(|l| [l, "\r\n"])
        .collect();
    // Only recvonly m-lines: nothing to publish (a player must use WHEP).
    let recvonly = sdp
        .replace("a=sendonly", "a=recvonly")
        .replace("a=sendrecv", "a=recvonly");
    assert!(recvonly.contains("a=recvonly"), "{recvonly}");
    let cases: [Case; 10] = [
        (
            Some(&token),
            Some("application/sdp"),
            &recvonly,
            400,
            "only recvonly m-lines",
        ),
        (
            Some(&token),
            Some("application/sdp"),
            &unbundled,
            400,
            "several m-lines without BUNDLE",
        ),
        (
            Some(&token),
            Some("application/sdp"),
            &g722,
            400,
            "unsupported codecs",
        ),
        (None, Some("application/sdp"), &sdp, 401, "no token"),
        (
            Some("garbage"),
            Some("application/sdp"),
            &sdp,
            401,
            "bad token",
        ),
        (
            Some(&elsewhere),
            Some("application/sdp"),
            &sdp,
            403,
            "another room",
        ),
        (
            Some(&viewer),
            Some("application/sdp"),
            &sdp,
            403,
            "may not publish",
        ),
        (
            Some(&token),
            Some("application/json"),
            &sdp,
            415,
            "wrong content type",
        ),
        (
            Some(&token),
            Some("application/sdp"),
            no_media,
            400,
            "no media",
        ),
        (
            Some(&token),
            Some("application/sdp"),
            "v=0\r\nm=video garbage\r\n",
            400,
            "garbage SDP",
        ),
    ];
    for (tok, ct, body, expected, what) in cases {
        let (status, _, text) = post(&gax, "stage", tok, ct, body);
        assert_refused(what, status, expected, &text);
    }
    // Over the offer limit (64 KiB), and over the server's whole-body limit (2 MiB): the same
    // JSON 413 either way.
    for size in [70 << 10, 3 << 20] {
        let huge = "x".repeat(size);
        let (status, _, text) = post(&gax, "stage", Some(&token), Some("application/sdp"), &huge);
        assert_refused(&format!("an offer of {size} bytes"), status, 413, &text);
    }
    assert_eq!(sessions(&gax), 0, "nothing left allocated");
}

/// `sdp` with every codec renamed to one GAX does not know (same payload types).
fn only_unsupported_codecs(sdp: &str) -> String {
    sdp.lines()
        .map(|l| match (l.strip_prefix("a=rtpmap:"), l.split_once('/')) {
            (Some(rest), Some((_, clock))) => {
                let pt = rest.split_whitespace().next().unwrap_or("0");
                format!("a=rtpmap:{pt} x-unsupported/{clock}")
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

/// A simulcast WHIP offer (what OBS or a browser publisher sends): one VP8 m-line with the
/// layers q, h, f, and audio.
fn simulcast_offer() -> String {
    common::sdp::offer(
        &[
            (MediaKind::Audio, Direction::SendOnly),
            (MediaKind::Video, Direction::SendOnly),
        ],
        &["q", "h", "f"],
    )
}

/// A simulcast offer is accepted: the answer receives the three layers.
#[test]
fn a_whip_simulcast_offer_is_accepted() {
    let gax = Gax::start(&[]);
    let token = gax.token(&["--room", "stage", "--identity", "obs"]);
    let offer = simulcast_offer();
    assert!(offer.contains("a=simulcast:send q;h;f"), "{offer}");
    let (status, head, answer) = post(&gax, "stage", Some(&token), Some("application/sdp"), &offer);
    assert_eq!(status, 201, "{head}\n{answer}");
    assert!(answer.contains("a=simulcast:recv q;h;f"), "{answer}");
    for rid in ["q", "h", "f"] {
        assert!(
            answer.contains(&format!("a=rid:{rid} recv")),
            "{rid}: {answer}"
        );
    }
    assert_eq!(delete(&gax, &location(&head), Some(&token)), 200);
    wait_sessions(&gax, 0, Duration::from_secs(5));
}

/// A WHEP player's offer: receive-only audio and video.
fn player_offer() -> String {
    common::sdp::offer(
        &[
            (MediaKind::Video, Direction::RecvOnly),
            (MediaKind::Audio, Direction::RecvOnly),
        ],
        &[],
    )
}

/// WHEP (`POST /whep/{room}/{participant}`, `DELETE` on the session URL): a player of a WHIP
/// publisher gets an answer that sends on its m-lines and is freed on DELETE; every refusal
/// has its status and a JSON body, and leaves nothing allocated.
#[test]
fn whep_players_and_their_refusals() {
    let gax = Gax::start(&[]);
    let publisher = gax.token(&["--room", "stage", "--identity", "obs"]);
    let (status, head, _) = post(
        &gax,
        "stage",
        Some(&publisher),
        Some("application/sdp"),
        &offer(),
    );
    assert_eq!(status, 201);
    let whip = location(&head);
    let id = whip
        .trim_start_matches("/whip/stage/")
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    wait_sessions(&gax, 1, Duration::from_secs(2));

    let play = |room: &str, who: &str, token: Option<&str>, ct: Option<&str>, body: &str| {
        http_request(
            gax.http,
            "POST",
            &format!("/whep/{room}/{who}"),
            token,
            ct,
            body.as_bytes(),
        )
        .unwrap()
    };
    let player = gax.token(&["--room", "stage", "--identity", "player", "--no-publish"]);
    let deaf = gax.token(&["--room", "stage", "--identity", "deaf", "--no-subscribe"]);
    let elsewhere = gax.token(&["--room", "other", "--identity", "x"]);
    let sdp = player_offer();
    let no_media = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
    // (participant, token, content type, body, expected status, what)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        u16,
        &'a str,
    );
    let g722 = only_unsupported_codecs(&sdp);
    let bad_layer = format!("{id}?layer=x");
    let cases: [Case; 11] = [
        (&id, None, Some("application/sdp"), &sdp, 401, "no token"),
        (
            &id,
            Some("garbage"),
            Some("application/sdp"),
            &sdp,
            401,
            "bad token",
        ),
        (
            &id,
            Some(&elsewhere),
            Some("application/sdp"),
            &sdp,
            403,
            "another room",
        ),
        (
            &id,
            Some(&deaf),
            Some("application/sdp"),
            &sdp,
            403,
            "may not subscribe",
        ),
        (
            &id,
            Some(&player),
            Some("text/plain"),
            &sdp,
            415,
            "wrong content type",
        ),
        (
            &id,
            Some(&player),
            Some("application/sdp"),
            no_media,
            400,
            "no media",
        ),
        (
            &id,
            Some(&player),
            Some("application/sdp"),
            &g722,
            400,
            "unsupported codecs",
        ),
        (
            "p999",
            Some(&player),
            Some("application/sdp"),
            &sdp,
            404,
            "unknown participant",
        ),
        (
            "obs",
            Some(&player),
            Some("application/sdp"),
            &sdp,
            404,
            "not an id",
        ),
        (
            &id,
            Some(&player),
            Some("application/sdp"),
            "v=0\r\nm=video garbage\r\n",
            400,
            "garbage SDP",
        ),
        (
            &bad_layer,
            Some(&player),
            Some("application/sdp"),
            &sdp,
            400,
            "unknown layer",
        ),
    ];
    for (who, tok, ct, body, expected, what) in cases {
        let (status, _, text) = play("stage", who, tok, ct, body);
        if what == "unknown layer" {
            assert!(text.contains("use q, h or f"), "{what}: {text}");
        }
        assert_refused(what, status, expected, &text);
    }
    assert_eq!(sessions(&gax), 1, "refusals hold nothing");

    let (status, head, answer) = play("stage", &id, Some(&player), Some("application/sdp"), &sdp);
    assert_eq!(status, 201, "{head}\n{answer}");
    assert!(
        answer.contains("a=sendonly") && answer.contains("a=ice-lite"),
        "{answer}"
    );
    let url = location(&head);
    assert!(url.starts_with(&format!("/whep/stage/{id}/")), "{url}");
    wait_sessions(&gax, 2, Duration::from_secs(2));
    let (status, head, _) =
        http_request(gax.http, "PATCH", &url, Some(&player), None, b"").unwrap();
    assert_eq!(status, 405, "no trickle ICE: {head}");
    assert_eq!(delete(&gax, &url, Some(&elsewhere)), 403, "someone else's");
    assert_eq!(delete(&gax, &url, None), 401);
    assert_eq!(
        delete(&gax, &format!("/whep/stage/{id}/p999-00"), Some(&player)),
        404
    );
    let whip_session = whip.rsplit('/').next().unwrap();
    assert_eq!(
        delete(
            &gax,
            &format!("/whep/stage/{id}/{whip_session}"),
            Some(&publisher)
        ),
        404,
        "a WHIP session is not a WHEP one"
    );
    assert_eq!(delete(&gax, &url, Some(&player)), 200);
    wait_sessions(&gax, 1, Duration::from_secs(5));
    assert_eq!(delete(&gax, &url, Some(&player)), 404, "gone");
    assert_eq!(delete(&gax, &whip, Some(&publisher)), 200);
    wait_sessions(&gax, 0, Duration::from_secs(5));
}

/// GStreamer's pipelines for `whip-client -V` and `-A` (it links each to its webrtcbin).
const SWC_VIDEO: &str = "videotestsrc is-live=true pattern=ball \
    ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! queue \
    ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60 \
    ! rtpvp8pay pt=96 picture-id-mode=15-bit ssrc=2 ! queue \
    ! application/x-rtp,media=video,encoding-name=VP8,payload=96";
const SWC_AUDIO: &str = "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert \
    ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue \
    ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111";

/// Debian's `simple-whip-client` (binary `whip-client`, GStreamer 1.22: webrtcbin, libnice,
/// its own RSA DTLS certificate, candidates trickled with PATCH, which GAX answers 405) run
/// against `gax`, with tests/e2e/no_upnp.c in front of it: bookworm's package aborts at start
/// on a libsoup 2/3 clash that comes in through libnice's UPnP library (see that file), and
/// the stand-in takes UPnP port mapping out. Call [`SimpleWhipClient::stop`] to end it the way
/// a user does (SIGTERM: it sends DELETE and quits).
struct SimpleWhipClient {
    child: std::process::Child,
    _no_upnp: tempfile::TempDir,
}

impl SimpleWhipClient {
    fn start(url: &str, token: &str, pipelines: &[(&str, &str)]) -> SimpleWhipClient {
        let no_upnp = tempfile::tempdir().unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/no_upnp.c");
        let built = std::process::Command::new("cc")
            .args([
                "-shared",
                "-fPIC",
                "-Wl,-soname,libgupnp-igd-1.0.so.4",
                "-o",
            ])
            .arg(no_upnp.path().join("libgupnp-igd-1.0.so.4"))
            .arg(&source)
            .output()
            .expect("a C compiler (cc) for tests/e2e/no_upnp.c");
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let mut cmd = std::process::Command::new("whip-client");
        cmd.env("LD_LIBRARY_PATH", no_upnp.path())
            .args(["-u", url, "-t", token, "-o"]);
        for (flag, pipeline) in pipelines {
            cmd.args([flag, pipeline]);
        }
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("whip-client (scripts/test installs Debian's simple-whip-client)");
        SimpleWhipClient {
            child,
            _no_upnp: no_upnp,
        }
    }

    /// SIGTERM, as Ctrl-C would; returns whether it exited cleanly and what it printed.
    fn stop(self) -> (bool, String) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let out = self.child.wait_with_output().unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("whip-client:\n{log}");
        (out.status.success(), log)
    }
}

/// The session URL whip-client printed, as a path.
fn swc_resource(log: &str) -> String {
    let url = log
        .lines()
        .find_map(|l| l.split("Resource URL: ").nth(1))
        .unwrap_or_else(|| panic!("whip-client got no session: {log}"));
    let path = url.trim().splitn(4, '/').nth(3).expect("an http:// URL");
    format!("/{path}")
}

/// RTP packets GAX received from publishers so far.
fn rtp_in(gax: &Gax) -> u64 {
    gax.metric("gax_media_rtp_in_total")
}

/// Debian's `simple-whip-client` publishes VP8 and Opus over WHIP; a Chromium call page in the
/// same room decodes its video and audio, and so does a WHEP player in Chromium (a bare
/// RTCPeerConnection: `POST /whep/{room}/{participant}`, then `DELETE`), placed on the other of
/// two workers so its media crosses between them. Then whip-client is stopped: its DELETE
/// ends the session (a second DELETE of it is 404).
#[test]
fn simple_whip_client_is_decoded_by_a_browser_and_a_whep_player() {
    let _one_at_a_time = common::browser::BROWSER
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if common::browser::e2e_dir().is_none() {
        return;
    }
    let ip = common::host_ipv4();
    // Two workers: the WHEP player lands on the worker the publisher is not on.
    let gax = Gax::start(&["--media-bind", &ip, "--workers", "2"]);
    let room = "whip-gst";
    let publisher = gax.token(&["--room", room, "--identity", "gst", "--name", "GStreamer"]);
    let viewer = gax.token(&["--room", room, "--identity", "viewer", "--no-publish"]);
    let player = gax.token(&["--room", room, "--identity", "player", "--no-publish"]);

    let url = format!("http://{}/whip/{room}", gax.http);
    let swc = SimpleWhipClient::start(&url, &publisher, &[("-V", SWC_VIDEO), ("-A", SWC_AUDIO)]);

    let tokens = serde_json::json!({ "viewer": viewer, "player": player });
    let run = std::panic::catch_unwind(|| {
        common::browser::run_scenario(
            "call.mjs",
            &[
                ("GAX_URL", format!("http://{}", gax.http)),
                ("GAX_ROOM", room.to_owned()),
                ("GAX_SCENARIO", "whip-viewer".to_owned()),
                ("GAX_TOKENS", tokens.to_string()),
                ("GAX_FROM", "GStreamer".to_owned()),
                ("GAX_EXPECT_RELAY", "1".to_owned()),
            ],
        )
    });
    let received = rtp_in(&gax);
    let (clean, log) = swc.stop();
    if let Err(e) = run {
        std::panic::resume_unwind(e);
    }
    assert!(clean, "whip-client failed (log above)");
    assert!(
        log.contains("DTLS connected") && log.contains("PeerConnection connected"),
        "{log}"
    );
    assert!(received > 100, "only {received} RTP packets from GStreamer");
    // whip-client's DELETE took the session away.
    let session = swc_resource(&log);
    assert_eq!(delete(&gax, &session, Some(&publisher)), 404, "{session}");
}

/// simple-whip-client with one track offers one m-line without a BUNDLE group (webrtcbin's
/// `bundle-policy=none`); GAX takes it as a bundle of one and answers without a group. Its
/// video reaches GAX.
#[test]
fn simple_whip_client_publishes_a_single_unbundled_track() {
    let ip = common::host_ipv4();
    let gax = Gax::start(&["--media-bind", &ip, "--workers", "1"]);
    let token = gax.token(&["--room", "swc-one", "--identity", "gst"]);
    let url = format!("http://{}/whip/swc-one", gax.http);
    let swc = SimpleWhipClient::start(&url, &token, &[("-V", SWC_VIDEO)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rtp_in(&gax) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let received = rtp_in(&gax);
    let (clean, log) = swc.stop();
    assert!(clean && log.contains("PeerConnection connected"), "{log}");
    assert!(
        received >= 100,
        "only {received} RTP packets from GStreamer"
    );
    wait_sessions(&gax, 0, Duration::from_secs(5));
}
