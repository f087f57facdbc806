//! `gax-loadgen`: whole-server load from real WebRTC clients, against GAX or Janus.
//!
//! The clients are webrtc-rs (`webrtc` crate), a stack independent of the server's, so a run
//! also checks interop. Against GAX (`--server gax`) publishers join over WHIP
//! (`POST /whip/{room}`) and players over WHEP (`POST /whep/{room}/{participant}`); against
//! Janus (`--server janus`) the same clients speak the VideoRoom plugin's HTTP API
//! (`janus.rs`). Each player is one peer connection receiving one publisher.
//!
//! Publishers send synthetic VP8 simulcast (`--layers 3`: f, h, q with their own SSRCs,
//! sequence numbers and picture ids, valid payload descriptors, a keyframe every 2 s and on
//! every PLI/FIR of that layer) and Opus-sized audio (50 packets/s). The last 8 bytes of every
//! payload are the send time (µs since the Unix epoch), so players measure the one-way
//! forwarding latency on this host's clock (`client.rs`).
//!
//! Scenarios: `broadcast` (per room, 1 publisher -> `--size` players), `meeting` (per room,
//! `--size` participants, each playing every other), `many-rooms` (broadcast in `--rooms`
//! rooms). Clients join over `--ramp`, settle for `--settle`, then the run holds for `--hold`
//! (only the hold is measured); each second prints the
//! packets and bits the players received, loss, latency p50/p99, the server's CPU and RSS (from
//! /proc of `--server-pid`) and the generator's own CPU; a generator near a full core is
//! flagged. `--out` writes the run as JSON, `--plot` as a PNG (`bench::report`).
//!
//! ```text
//! gax serve --jwt-secret S... &
//! gax-loadgen --url http://127.0.0.1:8080 --jwt-secret S... --scenario broadcast --size 20 \
//!     --server-pid $(pidof gax) --out run.json --plot run.png
//! gax-loadgen --server janus --url http://127.0.0.1:8088/janus --scenario meeting --size 4 \
//!     --server-pid $(pidof janus) --out janus.json
//! ```

mod chat;
mod client;
mod gax;
mod janus;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bench::report::{plot_run, Run, Second};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use webrtc::peer_connection::RTCPeerConnection;

use client::{Tally, VideoShape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    Broadcast,
    Meeting,
    ManyRooms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ServerKind {
    /// GAX over WHIP/WHEP.
    Gax,
    /// Janus's VideoRoom plugin over its HTTP API.
    Janus,
}

/// Whole-server load from WebRTC clients, against GAX (WHIP/WHEP) or Janus (VideoRoom).
#[derive(Debug, Parser, Serialize)]
#[command(name = "gax-loadgen", version)]
struct Args {
    /// Which server `--url` is.
    #[arg(long, value_enum, default_value = "gax")]
    server: ServerKind,
    /// The server's HTTP address (GAX: http://host:port; Janus: its API, e.g.
    /// http://127.0.0.1:8088/janus).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// GAX's token secret (the generator mints its own call tokens); not used for Janus.
    #[arg(long, env = "GAX_JWT_SECRET", hide_env_values = true)]
    #[serde(skip)]
    jwt_secret: Option<String>,
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
    /// Time between the last join and the start of the measurement, for the layers and the
    /// servers' estimates to settle.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    settle: Duration,
    /// Time the full load is held and measured.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    hold: Duration,
    /// Video frames per second per layer.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Simulcast layers per publisher: 3 (f, h, q) or 1 (no simulcast).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    layers: u8,
    /// RTP packets per video frame of the top layer (h has a third, q one).
    #[arg(long, default_value_t = 3)]
    packets_per_frame: u32,
    /// Bytes of RTP payload per video packet of the top layer.
    #[arg(long, default_value_t = 1100)]
    payload: usize,
    /// Players pin this simulcast layer (`q`, `h` or `f`; GAX: `?layer=` on the WHEP request)
    /// instead of the one the server's bandwidth estimate picks.
    #[arg(long, value_parser = ["q", "h", "f"])]
    pin_layer: Option<String>,
    /// The server's pid, for its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the run as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw the run's seconds (packets, latency, CPU) into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The server's name in the result (default: `gax` or `janus`), e.g. to tell two
    /// configurations of one server apart in the side-by-side table.
    #[arg(long)]
    label: Option<String>,
    /// Messenger sessions besides the media (GAX only): this many users signed up, in groups
    /// of 10, each on its own `/ws` session sending, typing and marking reads (`chat.rs`). The
    /// run fails if an acked message is missing from its chat at the end.
    #[arg(long, default_value_t = 0)]
    chat_sockets: usize,
    /// How often each messenger session sends a message.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "secs")]
    chat_every: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The server, whichever it is.
enum Target {
    Gax(gax::Gax),
    Janus(Arc<janus::Janus>),
}

/// A client's session with the server, ended at the end of the run.
enum Ending {
    Gax(gax::Session),
    Janus(janus::Handle),
}

impl Target {
    /// Makes room `index` ready; returns its name (GAX) or number (Janus).
    async fn room(&self, run_id: u64, index: usize, publishers: usize) -> anyhow::Result<String> {
        match self {
            Target::Gax(_) => Ok(format!("load-{run_id:x}-{index}")),
            Target::Janus(j) => {
                let room = (run_id % 1_000_000) * 1_000 + index as u64 + 1;
                j.create_room(room, publishers).await?;
                Ok(room.to_string())
            }
        }
    }

    /// Publishes `pc`'s tracks; returns the id players ask for.
    async fn publish(
        &self,
        pc: &RTCPeerConnection,
        room: &str,
        name: &str,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<(String, Ending)> {
        match self {
            Target::Gax(g) => {
                let (id, s) = g.publish(pc, room, name).await?;
                Ok((id, Ending::Gax(s)))
            }
            Target::Janus(j) => {
                let (id, h) = j.publish(pc, janus_room(room)?, name, stop.clone()).await?;
                Ok((id, Ending::Janus(h)))
            }
        }
    }

    async fn play(
        &self,
        pc: &RTCPeerConnection,
        room: &str,
        publisher: &str,
        name: &str,
        layer: Option<&str>,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<Ending> {
        match self {
            Target::Gax(g) => Ok(Ending::Gax(g.play(pc, room, publisher, name, layer).await?)),
            Target::Janus(j) => Ok(Ending::Janus(
                j.play(pc, janus_room(room)?, publisher, stop.clone())
                    .await?,
            )),
        }
    }

    /// Ends a session; true when the server said so.
    async fn end(&self, ending: &Ending) -> bool {
        match (self, ending) {
            (Target::Gax(g), Ending::Gax(s)) => g.end(s).await.is_ok_and(|status| status == 200),
            (Target::Janus(j), Ending::Janus(h)) => j.end(*h).await.is_ok(),
            _ => false,
        }
    }
}

fn janus_room(room: &str) -> anyhow::Result<u64> {
    room.parse().context("Janus rooms are numbers")
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

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[i])
}

/// Who publishes and who plays whom.
struct Plan {
    /// (room index, name)
    publishers: Vec<(usize, String)>,
    /// (room index, publisher index, name)
    plays: Vec<(usize, usize, String)>,
    rooms: usize,
}

fn plan(scenario: Scenario, rooms: usize, size: usize) -> Plan {
    let mut p = Plan {
        publishers: Vec::new(),
        plays: Vec::new(),
        rooms,
    };
    for r in 0..rooms {
        match scenario {
            Scenario::Broadcast | Scenario::ManyRooms => {
                p.publishers.push((r, format!("pub-{r}")));
                let publisher = p.publishers.len() - 1;
                for v in 0..size {
                    p.plays.push((r, publisher, format!("player-{r}-{v}")));
                }
            }
            Scenario::Meeting => {
                let first = p.publishers.len();
                for m in 0..size {
                    p.publishers.push((r, format!("member-{r}-{m}")));
                }
                for m in 0..size {
                    for o in (0..size).filter(|&o| o != m) {
                        p.plays
                            .push((r, first + o, format!("member-{r}-{m}-sees-{o}")));
                    }
                }
            }
        }
    }
    p
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    // Two rustls crypto providers are linked (ring for webrtc-rs, aws-lc-rs for the rest):
    // rustls cannot pick one by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target = match args.server {
        ServerKind::Gax => Target::Gax(gax::Gax::new(
            &args.url,
            args.jwt_secret
                .as_deref()
                .context("--jwt-secret (or GAX_JWT_SECRET) is needed for GAX")?,
        )?),
        ServerKind::Janus => {
            anyhow::ensure!(
                args.pin_layer.is_none(),
                "--pin-layer is only supported against GAX"
            );
            Target::Janus(Arc::new(janus::Janus::new(&args.url)))
        }
    };
    let rooms = args.rooms.unwrap_or(match args.scenario {
        Scenario::ManyRooms => 10,
        _ => 1,
    });
    let size = args.size.max(1);
    let shape = VideoShape {
        fps: args.fps,
        packets_per_frame: args.packets_per_frame,
        payload: args.payload,
        layers: usize::from(args.layers),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let run_id = client::now_us() & 0xff_ffff;
    let plan = plan(args.scenario, rooms, size);
    let tally = Arc::new(Tally::new(plan.plays.len()));

    let clients = plan.publishers.len() + plan.plays.len();
    let gap = args.ramp / u32::try_from(clients.max(1)).unwrap_or(u32::MAX);
    eprintln!(
        "gax-loadgen: {:?} on {:?}, {rooms} room(s), {} publisher(s) with {} layer(s), {} player(s), ramp {:?}, hold {:?}",
        args.scenario,
        args.server,
        plan.publishers.len(),
        shape.layers,
        plan.plays.len(),
        args.ramp,
        args.hold
    );

    let chat_load = match args.chat_sockets {
        0 => None,
        n => {
            anyhow::ensure!(
                args.server == ServerKind::Gax,
                "--chat-sockets is only supported against GAX"
            );
            let secret = args.jwt_secret.as_deref().unwrap_or_default();
            let load = chat::ChatLoad::start(
                &args.url,
                secret,
                n,
                args.chat_every,
                args.ramp,
                stop.clone(),
            )
            .await
            .context("starting the messenger sessions")?;
            eprintln!("gax-loadgen: {n} messenger session(s) open");
            tokio::spawn(report_chat(load.tally().clone(), stop.clone()));
            Some(load)
        }
    };
    let mut room_names = Vec::new();
    for r in 0..plan.rooms {
        let publishers = plan.publishers.iter().filter(|p| p.0 == r).count();
        room_names.push(target.room(run_id, r, publishers).await?);
    }
    let mut ids = Vec::new();
    let mut sessions: Vec<(Arc<RTCPeerConnection>, Ending)> = Vec::new();
    for (room, name) in &plan.publishers {
        let pc = client::peer_connection().await?;
        let tracks = client::add_publisher_tracks(&pc, name, shape).await?;
        let (id, ending) = target
            .publish(&pc, &room_names[*room], name, &stop)
            .await
            .with_context(|| format!("publisher {name}"))?;
        client::start_sending(tracks, stop.clone());
        tally.publishers_up.fetch_add(1, Ordering::Relaxed);
        ids.push(id);
        sessions.push((pc, ending));
        tokio::time::sleep(gap).await;
    }
    // Give the publishers' media a moment to connect before players ask for their tracks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (player, (room, publisher, name)) in plan.plays.iter().enumerate() {
        let pc = client::peer_connection().await?;
        client::count_received(&pc, tally.clone(), player);
        let ending = target
            .play(
                &pc,
                &room_names[*room],
                &ids[*publisher],
                name,
                args.pin_layer.as_deref(),
                &stop,
            )
            .await
            .with_context(|| format!("player {name}"))?;
        tally.players_up.fetch_add(1, Ordering::Relaxed);
        sessions.push((pc, ending));
        tokio::time::sleep(gap).await;
    }

    tokio::time::sleep(args.settle).await;
    let mut run = hold(&args, &plan, &tally).await;
    stop.store(true, Ordering::Relaxed);
    let chat = match chat_load {
        Some(load) => Some(load.finish().await.context("checking the messenger load")?),
        None => None,
    };
    run.chat = chat.as_ref().map(serde_json::to_value).transpose()?;
    let json = serde_json::to_string_pretty(&run)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{json}"),
    }
    if let Some(path) = &args.plot {
        plot_run(&run, path).with_context(|| format!("plotting {}", path.display()))?;
    }
    // End every session, players first.
    let mut ended: HashMap<&str, u32> = HashMap::new();
    for (pc, ending) in sessions.iter().rev() {
        let ok = target.end(ending).await;
        *ended.entry(if ok { "ok" } else { "failed" }).or_insert(0) += 1;
        let _ = pc.close().await;
    }
    eprintln!("sessions ended: {ended:?}");
    if tally.packets.load(Ordering::Relaxed) == 0 {
        bail!("the players received nothing");
    }
    if let Some(c) = &chat {
        eprintln!("messenger: {c:?}");
        if c.lost > 0 || c.errors > 0 || c.disconnects > 0 || c.acked == 0 {
            bail!(
                "the messenger load failed: {} lost, {} errors, {} disconnects, {} acked",
                c.lost,
                c.errors,
                c.disconnects,
                c.acked
            );
        }
    }
    Ok(())
}

/// Prints the messenger load's counters every second until `stop`.
async fn report_chat(t: Arc<chat::ChatTally>, stop: Arc<AtomicBool>) {
    let mut last = (0, 0, 0);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (
            t.sent.load(Ordering::Relaxed),
            t.acked.load(Ordering::Relaxed),
            t.delivered.load(Ordering::Relaxed),
        );
        eprintln!(
            "chat: sessions={} sent/s={} acked/s={} delivered/s={} errors={} disconnects={}",
            t.connected.load(Ordering::Relaxed),
            now.0 - last.0,
            now.1 - last.1,
            now.2 - last.2,
            t.errors.load(Ordering::Relaxed),
            t.disconnects.load(Ordering::Relaxed)
        );
        last = now;
    }
}

/// Holds the load for `--hold`, printing and recording every second.
async fn hold(args: &Args, plan: &Plan, tally: &Tally) -> Run {
    let server = args.server_pid.map(|p| p.to_string());
    let mut seconds: Vec<Second> = Vec::new();
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
    let mut hold_expected = 0u64;
    let mut generator_bound = false;
    let _ = tally.take_latencies();
    let _ = tally.take_receiving();
    while started.elapsed() < args.hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        let dt = now.duration_since(last.5).as_secs_f64();
        let packets = tally.packets.load(Ordering::Relaxed);
        let bytes = tally.bytes.load(Ordering::Relaxed);
        let expected = tally.expected.load(Ordering::Relaxed);
        let srv = server.as_deref().and_then(proc_usage);
        let own = proc_usage("self").map_or(0, |u| u.0);
        let mut lat = tally.take_latencies();
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
            receiving: tally.take_receiving(),
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
            "t={:>3}s players={} receiving={} packets/s={:>7} {:>7.1} Mbit/s loss={:.2}% p50={:?}µs p99={:?}µs server cpu={} rss={} gen cpu={:.0}%{}",
            second.t,
            second.players,
            second.receiving,
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
        all_latencies.extend(lat);
        seconds.push(second);
        last = (packets, bytes, expected, srv.map(|u| u.0), own, now);
    }
    all_latencies.sort_unstable();
    let held_s = started.elapsed().as_secs_f64();
    Run {
        server: args.label.clone().unwrap_or_else(|| {
            match args.server {
                ServerKind::Gax => "gax",
                ServerKind::Janus => "janus",
            }
            .into()
        }),
        scenario: serde_json::to_value(args.scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        rooms: plan.rooms,
        size: args.size,
        layers: usize::from(args.layers),
        publishers: plan.publishers.len(),
        players: plan.plays.len(),
        args: serde_json::to_value(args).unwrap_or_default(),
        packets_per_s: hold_packets as f64 / held_s,
        packets_per_server_cpu_s: (hold_server_ticks > 0)
            .then(|| hold_packets as f64 / (hold_server_ticks as f64 / TICKS)),
        server_cpu_pct: server
            .is_some()
            .then(|| hold_server_ticks as f64 / TICKS / held_s * 100.0),
        server_rss_mb: seconds
            .iter()
            .filter_map(|s| s.server_rss_mb)
            .reduce(f64::max),
        loss_pct: if hold_expected == 0 {
            0.0
        } else {
            hold_expected.saturating_sub(hold_packets) as f64 * 100.0 / hold_expected as f64
        },
        p50_us: percentile(&all_latencies, 0.5),
        p99_us: percentile(&all_latencies, 0.99),
        seconds,
        generator_bound,
        chat: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_scenarios() {
        let b = plan(Scenario::Broadcast, 1, 5);
        assert_eq!((b.publishers.len(), b.plays.len()), (1, 5));
        let m = plan(Scenario::Meeting, 2, 4);
        assert_eq!((m.publishers.len(), m.plays.len()), (8, 24));
        // Nobody plays themself, and everyone plays someone in their own room.
        for (room, publisher, _) in &m.plays {
            assert_eq!(m.publishers[*publisher].0, *room);
        }
        let r = plan(Scenario::ManyRooms, 3, 2);
        assert_eq!((r.publishers.len(), r.plays.len(), r.rooms), (3, 6, 3));
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        assert_eq!(percentile(&[], 0.5), None);
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.99), Some(99));
    }
}
