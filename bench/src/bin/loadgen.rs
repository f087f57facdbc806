//! `gax-loadgen`: whole-server load from real WebRTC clients.
//!
//! The clients are webrtc-rs (`webrtc` crate), a stack independent of the server's, so a run
//! also checks interop. Publishers join over WHIP (`POST /whip/{room}`), players over WHEP
//! (`POST /whep/{room}/{participant}`); no other signaling is needed, so any server with those
//! doors can be measured the same way.
//!
//! Publishers send synthetic VP8 (one layer: `--fps` frames of `--packets-per-frame` packets,
//! valid payload descriptors, a keyframe every 2 s and on every PLI/FIR) and Opus-sized audio
//! (50 packets/s). The last 8 bytes of every payload are the send time (µs since the Unix
//! epoch), so players measure the one-way forwarding latency on this host's clock.
//!
//! Scenarios: `broadcast` (per room, 1 publisher -> `--size` players), `meeting` (per room,
//! `--size` participants, each playing every other), `many-rooms` (broadcast in `--rooms`
//! rooms). Clients join over `--ramp`, then the run holds for `--hold`; each second prints the
//! packets and bits the players received, loss, latency p50/p99, the server's CPU and RSS (from
//! /proc of `--server-pid`) and the generator's own CPU; a generator near a full core is
//! flagged. `--out` writes the run as JSON.
//!
//! ```text
//! gax serve --jwt-secret S... &
//! gax-loadgen --url http://127.0.0.1:8080 --jwt-secret S... --scenario broadcast --size 20 \
//!     --server-pid $(pidof gax) --out run.json
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use messaging::auth::{Claims, TokenKeys};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    Broadcast,
    Meeting,
    ManyRooms,
}

/// Whole-server load from WebRTC clients over WHIP/WHEP (see the crate docs of `bench`).
#[derive(Debug, Parser, Serialize)]
#[command(name = "gax-loadgen", version)]
struct Args {
    /// The server's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's token secret (the generator mints its own call tokens).
    #[arg(long, env = "GAX_JWT_SECRET", hide_env_values = true)]
    #[serde(skip)]
    jwt_secret: String,
    #[arg(long, value_enum, default_value = "broadcast")]
    scenario: Scenario,
    /// Players per room (broadcast, many-rooms) or participants per room (meeting).
    #[arg(long, default_value_t = 4)]
    size: usize,
    /// Rooms (many-rooms; the others use 1 unless told).
    #[arg(long)]
    rooms: Option<usize>,
    /// Time over which clients join.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    ramp: Duration,
    /// Time the full load is held and measured.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    hold: Duration,
    /// Video frames per second per publisher.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// RTP packets per video frame.
    #[arg(long, default_value_t = 3)]
    packets_per_frame: u32,
    /// Bytes of RTP payload per video packet.
    #[arg(long, default_value_t = 1100)]
    payload: usize,
    /// The server's pid, for its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the run as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What every player counts (shared by all players).
#[derive(Default)]
struct Tally {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Packets a player's sequence numbers say it should have had.
    expected: AtomicU64,
    /// One-way latencies of this second, µs.
    latencies: Mutex<Vec<u32>>,
    players_up: AtomicU64,
    publishers_up: AtomicU64,
}

#[derive(Serialize)]
struct Second {
    t: u32,
    players: u64,
    packets: u64,
    mbit: f64,
    loss_pct: f64,
    p50_us: Option<u32>,
    p99_us: Option<u32>,
    server_cpu_pct: Option<f64>,
    server_rss_mb: Option<f64>,
    generator_cpu_pct: f64,
}

#[derive(Serialize)]
struct Run<'a> {
    args: &'a Args,
    publishers: usize,
    players: usize,
    seconds: Vec<Second>,
    /// Over the hold: packets the players received per CPU-second the server used.
    packets_per_server_cpu_s: Option<f64>,
    loss_pct: f64,
    p50_us: Option<u32>,
    p99_us: Option<u32>,
    /// The generator used more than 90% of a core in some second: the numbers may be its
    /// limit rather than the server's.
    generator_bound: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// (utime + stime) in clock ticks and RSS in kB of a process (`self` or a pid).
fn proc_usage(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

/// Clock ticks per second of /proc times (USER_HZ; 100 on Linux everywhere we run).
const TICKS: f64 = 100.0;

/// One HTTP/1.1 request over a fresh connection: (status, headers, body).
async fn http(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    let host = base
        .strip_prefix("http://")
        .context("--url must be http://host:port")?
        .trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(host).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}

fn location(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_owned())
    })
}

async fn peer_connection() -> anyhow::Result<Arc<RTCPeerConnection>> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?;
    let mut settings = SettingEngine::default();
    // The server may be on loopback; gather loopback candidates too.
    settings.set_include_loopback_candidate(true);
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Ok(Arc::new(
        api.new_peer_connection(RTCConfiguration::default()).await?,
    ))
}

/// Makes the offer with every candidate in it (WHIP/WHEP without trickle), POSTs it to
/// `path`, applies the answer; returns the session's `Location`.
async fn negotiate(
    pc: &RTCPeerConnection,
    base: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<String> {
    let offer = pc.create_offer(None).await?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await?;
    let _ = gathered.recv().await;
    let sdp = pc
        .local_description()
        .await
        .context("no local description")?
        .sdp;
    let (status, head, body) = http(base, "POST", path, token, &sdp).await?;
    if status != 201 {
        bail!("POST {path}: {status} {body}");
    }
    pc.set_remote_description(RTCSessionDescription::answer(body)?)
        .await?;
    location(&head).context("no Location in the answer")
}

/// A publisher: joins over WHIP, then sends video and audio until `stop`. Returns its
/// participant id (from the Location) once joined.
async fn publish(
    args: Arc<Args>,
    keys: TokenKeys,
    room: String,
    name: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(String, Arc<RTCPeerConnection>, String, String)> {
    let pc = peer_connection().await?;
    let video = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            ..Default::default()
        },
        "video".to_owned(),
        name.clone(),
    ));
    let audio = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            ..Default::default()
        },
        "audio".to_owned(),
        name.clone(),
    ));
    let sender = pc
        .add_track(Arc::clone(&video) as Arc<dyn TrackLocal + Send + Sync>)
        .await?;
    pc.add_track(Arc::clone(&audio) as Arc<dyn TrackLocal + Send + Sync>)
        .await?;
    let token = keys.mint(&Claims::for_room(
        &name,
        Some(&name),
        &room,
        Duration::from_secs(3600),
    ))?;
    let path = format!("/whip/{room}");
    let session = negotiate(&pc, &args.url, &path, &token).await?;
    let id = session
        .rsplit('/')
        .next()
        .and_then(|s| s.split('-').next())
        .context("unexpected WHIP Location")?
        .to_owned();

    // Keyframe requests from the server (PLI / FIR).
    let want_key = Arc::new(AtomicBool::new(true));
    let wk = want_key.clone();
    tokio::spawn(async move {
        while let Ok((pkts, _)) = sender.read_rtcp().await {
            if pkts.iter().any(|p| {
                p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
            }) {
                wk.store(true, Ordering::Relaxed);
            }
        }
    });
    let video_task = {
        let (args, stop) = (args.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / args.fps.max(1));
            let (mut seq, mut ts, mut frame) = (0u16, 0u32, 0u64);
            let step = 90_000 / args.fps.max(1);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let key = want_key.swap(false, Ordering::Relaxed)
                    || frame % u64::from(2 * args.fps.max(1)) == 0;
                for i in 0..args.packets_per_frame {
                    let last = i + 1 == args.packets_per_frame;
                    let mut p = vec![0u8; args.payload.max(16)];
                    // VP8 payload descriptor: S bit on the frame's first packet.
                    p[0] = if i == 0 { 0x10 } else { 0x00 };
                    if i == 0 {
                        // VP8 payload header: P bit clear on keyframes; keyframe start code.
                        p[1] = if key { 0x00 } else { 0x01 };
                        if key {
                            p[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                        }
                    }
                    let n = p.len();
                    p[n - 8..].copy_from_slice(&now_us().to_be_bytes());
                    let pkt = Packet {
                        header: Header {
                            version: 2,
                            marker: last,
                            sequence_number: seq,
                            timestamp: ts,
                            ..Default::default()
                        },
                        payload: Bytes::from(p),
                    };
                    seq = seq.wrapping_add(1);
                    if video.write_rtp(&pkt).await.is_err() {
                        return;
                    }
                }
                ts = ts.wrapping_add(step);
                frame += 1;
            }
        })
    };
    let audio_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let (mut seq, mut ts) = (0u16, 0u32);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut p = vec![0xfcu8; 80];
            p[72..].copy_from_slice(&now_us().to_be_bytes());
            let pkt = Packet {
                header: Header {
                    version: 2,
                    sequence_number: seq,
                    timestamp: ts,
                    ..Default::default()
                },
                payload: Bytes::from(p),
            };
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
            if audio.write_rtp(&pkt).await.is_err() {
                return;
            }
        }
    });
    drop((video_task, audio_task));
    Ok((id, pc, session, token))
}

/// A player of `publisher` in `room`: joins over WHEP and counts what arrives.
async fn play(
    args: Arc<Args>,
    keys: TokenKeys,
    room: String,
    publisher: String,
    name: String,
    tally: Arc<Tally>,
) -> anyhow::Result<(Arc<RTCPeerConnection>, String, String)> {
    let pc = peer_connection().await?;
    for kind in [RTPCodecType::Video, RTPCodecType::Audio] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: Vec::new(),
            }),
        )
        .await?;
    }
    let t = tally.clone();
    pc.on_track(Box::new(move |track, _, _| {
        let t = t.clone();
        // The handler must return at once (webrtc-rs runs them one after another): read in a
        // task of its own.
        tokio::spawn(async move {
            let mut first: Option<u64> = None;
            let mut highest = 0u64; // extended sequence number
            while let Ok((pkt, _)) = track.read_rtp().await {
                let now = now_us();
                let n = pkt.payload.len();
                t.packets.fetch_add(1, Ordering::Relaxed);
                t.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if n >= 8 {
                    let sent =
                        u64::from_be_bytes(pkt.payload[n - 8..].try_into().unwrap_or([0; 8]));
                    if sent > 0 && now >= sent {
                        let lat = u32::try_from(now - sent).unwrap_or(u32::MAX);
                        t.latencies
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(lat);
                    }
                }
                // Loss from sequence numbers: expected = span of extended numbers seen.
                let seq = u64::from(pkt.header.sequence_number);
                let ext = match first {
                    None => {
                        first = Some(seq);
                        highest = seq;
                        t.expected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(_) => {
                        let cycle = highest & !0xffff;
                        let mut e = cycle | seq;
                        if e + 0x8000 < highest {
                            e += 0x1_0000;
                        } else if e > highest + 0x8000 && e >= 0x1_0000 {
                            e -= 0x1_0000;
                        }
                        e
                    }
                };
                if ext > highest {
                    t.expected.fetch_add(ext - highest, Ordering::Relaxed);
                    highest = ext;
                }
            }
        });
        Box::pin(async {})
    }));
    let token = keys.mint(&{
        let mut c = Claims::for_room(&name, Some(&name), &room, Duration::from_secs(3600));
        c.can_publish = false;
        c
    })?;
    let path = format!("/whep/{room}/{publisher}");
    let session = negotiate(&pc, &args.url, &path, &token).await?;
    tally.players_up.fetch_add(1, Ordering::Relaxed);
    Ok((pc, session, token))
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[i])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    // Two rustls crypto providers are linked (ring for webrtc-rs, aws-lc-rs for the rest):
    // rustls cannot pick one by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    anyhow::ensure!(
        args.jwt_secret.len() >= 32,
        "--jwt-secret must be the server's secret (at least 32 characters)"
    );
    let keys = TokenKeys::from_secret(args.jwt_secret.as_bytes());
    let rooms = args.rooms.unwrap_or(match args.scenario {
        Scenario::ManyRooms => 10,
        _ => 1,
    });
    let size = args.size.max(1);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let run_id = format!("{:x}", now_us() & 0xffffff);

    // Who publishes and who plays whom.
    let mut publishers: Vec<(String, String)> = Vec::new(); // (room, name)
    let mut plays: Vec<(String, usize, String)> = Vec::new(); // (room, publisher index, name)
    for r in 0..rooms {
        let room = format!("load-{run_id}-{r}");
        match args.scenario {
            Scenario::Broadcast | Scenario::ManyRooms => {
                publishers.push((room.clone(), format!("pub-{r}")));
                let p = publishers.len() - 1;
                for v in 0..size {
                    plays.push((room.clone(), p, format!("player-{r}-{v}")));
                }
            }
            Scenario::Meeting => {
                let first = publishers.len();
                for m in 0..size {
                    publishers.push((room.clone(), format!("member-{r}-{m}")));
                }
                for m in 0..size {
                    for o in 0..size {
                        if m != o {
                            plays.push((
                                room.clone(),
                                first + o,
                                format!("member-{r}-{m}-sees-{o}"),
                            ));
                        }
                    }
                }
            }
        }
    }
    let clients = publishers.len() + plays.len();
    let gap = args.ramp / u32::try_from(clients.max(1)).unwrap_or(u32::MAX);
    eprintln!(
        "gax-loadgen: {:?}, {rooms} room(s), {} publisher(s), {} player(s), ramp {:?}, hold {:?}",
        args.scenario,
        publishers.len(),
        plays.len(),
        args.ramp,
        args.hold
    );

    let mut ids = Vec::new();
    let mut sessions: Vec<(Arc<RTCPeerConnection>, String, String)> = Vec::new();
    for (room, name) in &publishers {
        let (id, pc, loc, token) = publish(
            args.clone(),
            keys.clone(),
            room.clone(),
            name.clone(),
            stop.clone(),
        )
        .await
        .with_context(|| format!("publisher {name}"))?;
        tally.publishers_up.fetch_add(1, Ordering::Relaxed);
        ids.push(id);
        sessions.push((pc, loc, token));
        tokio::time::sleep(gap).await;
    }
    // Give the publishers' media a moment to connect before players ask for their tracks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (room, p, name) in &plays {
        let s = play(
            args.clone(),
            keys.clone(),
            room.clone(),
            ids[*p].clone(),
            name.clone(),
            tally.clone(),
        )
        .await
        .with_context(|| format!("player {name}"))?;
        sessions.push(s);
        tokio::time::sleep(gap).await;
    }

    // Hold and measure.
    let server = args.server_pid.map(|p| p.to_string());
    let mut seconds = Vec::new();
    let started = Instant::now();
    let mut last = (
        tally.packets.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed),
        tally.expected.load(Ordering::Relaxed),
        server.as_deref().and_then(proc_usage).map(|u| u.0),
        proc_usage("self").map_or(0, |u| u.0),
        Instant::now(),
    );
    let mut all_latencies = Vec::new();
    let (mut hold_packets, mut hold_server_ticks) = (0u64, 0u64);
    let (mut hold_expected, mut hold_received) = (0u64, 0u64);
    let mut generator_bound = false;
    tally
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    while started.elapsed() < args.hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        let dt = now.duration_since(last.5).as_secs_f64();
        let packets = tally.packets.load(Ordering::Relaxed);
        let bytes = tally.bytes.load(Ordering::Relaxed);
        let expected = tally.expected.load(Ordering::Relaxed);
        let srv = server.as_deref().and_then(proc_usage);
        let own = proc_usage("self").map_or(0, |u| u.0);
        let mut lat =
            std::mem::take(&mut *tally.latencies.lock().unwrap_or_else(|e| e.into_inner()));
        lat.sort_unstable();
        let (dp, de) = (packets - last.0, expected - last.2);
        let gen_cpu = (own - last.4) as f64 / TICKS / dt * 100.0;
        generator_bound |= gen_cpu > 90.0;
        let server_cpu = match (srv, last.3) {
            (Some((t, _)), Some(prev)) => {
                hold_server_ticks += t - prev;
                Some((t - prev) as f64 / TICKS / dt * 100.0)
            }
            _ => None,
        };
        let second = Second {
            t: seconds.len() as u32 + 1,
            players: tally.players_up.load(Ordering::Relaxed),
            packets: dp,
            mbit: (bytes - last.1) as f64 * 8.0 / dt / 1e6,
            loss_pct: if de == 0 {
                0.0
            } else {
                (de.saturating_sub(dp)) as f64 * 100.0 / de as f64
            },
            p50_us: percentile(&lat, 0.5),
            p99_us: percentile(&lat, 0.99),
            server_cpu_pct: server_cpu,
            server_rss_mb: srv.map(|(_, kb)| kb as f64 / 1024.0),
            generator_cpu_pct: gen_cpu,
        };
        eprintln!(
            "t={:>3}s players={} packets/s={:>7} {:>7.1} Mbit/s loss={:.2}% p50={:?}µs p99={:?}µs server cpu={} rss={} gen cpu={:.0}%{}",
            second.t,
            second.players,
            second.packets,
            second.mbit,
            second.loss_pct,
            second.p50_us,
            second.p99_us,
            second.server_cpu_pct.map_or("-".into(), |c| format!("{c:.0}%")),
            second.server_rss_mb.map_or("-".into(), |m| format!("{m:.0} MB")),
            second.generator_cpu_pct,
            if gen_cpu > 90.0 { "  [generator-bound]" } else { "" }
        );
        hold_packets += dp;
        hold_expected += de;
        hold_received += dp;
        all_latencies.extend(lat);
        seconds.push(second);
        last = (packets, bytes, expected, srv.map(|u| u.0), own, now);
    }
    stop.store(true, Ordering::Relaxed);
    all_latencies.sort_unstable();
    let run = Run {
        args: &args,
        publishers: publishers.len(),
        players: plays.len(),
        packets_per_server_cpu_s: (hold_server_ticks > 0)
            .then(|| hold_packets as f64 / (hold_server_ticks as f64 / TICKS)),
        loss_pct: if hold_expected == 0 {
            0.0
        } else {
            hold_expected.saturating_sub(hold_received) as f64 * 100.0 / hold_expected as f64
        },
        p50_us: percentile(&all_latencies, 0.5),
        p99_us: percentile(&all_latencies, 0.99),
        seconds,
        generator_bound,
    };
    let json = serde_json::to_string_pretty(&run)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{json}"),
    }
    // End every session (DELETE), players first.
    let mut ended = HashMap::new();
    for (pc, loc, token) in sessions.iter().rev() {
        let status = http(&args.url, "DELETE", loc, token, "")
            .await
            .map(|r| r.0)
            .unwrap_or(0);
        *ended.entry(status).or_insert(0u32) += 1;
        let _ = pc.close().await;
    }
    eprintln!("sessions ended: {ended:?}");
    if tally.packets.load(Ordering::Relaxed) == 0 {
        bail!("the players received nothing");
    }
    Ok(())
}
