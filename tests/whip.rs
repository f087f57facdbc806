//! WHIP ingest (`POST /whip/{room}`, `DELETE` on the session URL) against a real `gax serve`:
//! the success path with a real WebRTC offer, and every refusal with its status; sessions are
//! freed on DELETE and when their media never connects; and interop: a GStreamer publisher
//! (webrtcbin, `tests/e2e/gst_whip.py`) whose stream a browser in the room decodes.

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
    let (_, _, metrics) = gax.get("/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("gax_media_sessions{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
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
/// `message`); an offer with only unsupported codecs says so.
fn assert_refused(what: &str, status: u16, expected: u16, text: &str) {
    assert_eq!(status, expected, "{what}: {text}");
    if what == "unsupported codecs" {
        assert!(text.contains("none of the offered media"), "{what}: {text}");
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
    let cases: [Case; 8] = [
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
    let huge = "x".repeat(70 * 1024);
    let (status, _, _) = post(&gax, "stage", Some(&token), Some("application/sdp"), &huge);
    assert_eq!(status, 413);
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

/// GStreamer publishes over WHIP (Debian's GStreamer 1.22: webrtcbin, libnice, VP8 + Opus); a
/// Chromium call page in the same room decodes its video and audio, and so does a WHEP player
/// in Chromium (a bare RTCPeerConnection: `POST /whep/{room}/{participant}`, then `DELETE`),
/// placed on the other of two workers so its media crosses between them; the publisher then
/// ends its session with DELETE (200).
///
/// Debian's `simple-whip-client` cannot be used on this Debian (see tests/e2e/gst_whip.py:
/// it aborts at start on a libsoup 2/3 clash), so the publisher is the same GStreamer stack
/// driven from Python. It keeps GStreamer's own DTLS certificate, an RSA one, as
/// simple-whip-client does (GAX verifies RSA client certificates: third_party/README.md).
#[test]
fn a_gstreamer_publisher_is_decoded_by_a_browser() {
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

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/gst_whip.py");
    let url = format!("http://{}/whip/{room}", gax.http);
    let child = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .args([url.as_str(), publisher.as_str(), "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with GStreamer (scripts/test installs python3-gst-1.0)");
    let pid = child.id();

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
    // Done watching: the publisher ends its session (SIGTERM -> DELETE).
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "publisher:\n{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Err(e) = run {
        std::panic::resume_unwind(e);
    }
    assert!(
        out.status.success(),
        "the GStreamer publisher failed (log above)"
    );
    assert!(
        log.contains("\"deleted\", \"status\": 200"),
        "DELETE did not answer 200"
    );
    let (_, _, metrics) = gax.get("/metrics");
    let rtp_in: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("gax_media_rtp_in_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        rtp_in > 100,
        "only {rtp_in} RTP packets arrived from GStreamer"
    );
}
