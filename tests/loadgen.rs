//! `gax-loadgen` (bench/src/bin/loadgen/) end to end: the broadcast, meeting and many-rooms
//! scenarios run with webrtc-rs clients sending 3-layer simulcast, against a real `gax serve`
//! (WHIP/WHEP, bandwidth estimation on) and against Janus's VideoRoom (Debian's package,
//! started by bench/scripts/janus.sh). Every player receives media, the JSON result has a line
//! per second with the server's CPU and RSS, and the PNG plot is written. Only that it works is
//! checked here; how fast is measured by bench/scripts/side-by-side.sh (bench/README.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Gax;

const SECRET: &str = "loadgen-test-secret-loadgen-test-secret";

/// A binary of the `bench` package, built next to `gax` by `cargo test --workspace
/// --all-targets`.
fn bench_bin(name: &str) -> PathBuf {
    let bin = PathBuf::from(common::gax_bin()).with_file_name(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p bench --bin {name}` (scripts/test builds every target)",
        bin.display()
    );
    bin
}

/// Runs the generator against `url` with a 3 s hold; returns the JSON result (and checks the
/// plot).
fn run(server: &str, url: &str, pid: u32, scenario: &[&str]) -> serde_json::Value {
    run_holding(server, url, pid, scenario, HOLD_S)
}

/// Seconds of the hold in [`run`].
const HOLD_S: usize = 3;

/// [`run`] with a hold of `hold_s` seconds.
fn run_holding(
    server: &str,
    url: &str,
    pid: u32,
    scenario: &[&str],
    hold_s: usize,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let (out, plot) = (dir.path().join("run.json"), dir.path().join("run.png"));
    let hold = format!("{hold_s}s");
    let result = Command::new(bench_bin("gax-loadgen"))
        .args(["--server", server, "--url", url, "--jwt-secret", SECRET])
        .args(scenario)
        .args(["--ramp", "1s", "--hold", &hold, "--fps", "15"])
        .args(["--server-pid", &pid.to_string()])
        .arg("--out")
        .arg(&out)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("run gax-loadgen");
    let log = String::from_utf8_lossy(&result.stderr);
    eprintln!("{log}");
    assert!(result.status.success(), "gax-loadgen failed (log above)");
    assert!(
        log.contains("sessions ended: {\"ok\":") && !log.contains("\"failed\""),
        "every session ends cleanly: {log}"
    );
    let png = std::fs::read(&plot).expect("the plot is written");
    assert_eq!(&png[1..4], b"PNG");
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// Every second of a 3 s hold has every player up, packets, and the server's CPU and RSS.
fn check_seconds(run: &serde_json::Value, players: u64) {
    check_hold(run, players, HOLD_S)
}

/// [`check_seconds`] for a hold of `hold_s` seconds.
fn check_hold(run: &serde_json::Value, players: u64, hold_s: usize) {
    let seconds = run["seconds"].as_array().unwrap();
    assert_eq!(seconds.len(), hold_s, "{run}");
    for s in seconds {
        assert_eq!(s["players"], players, "{s}");
        assert_eq!(s["receiving"], players, "every player receives: {s}");
        assert!(s["packets"].as_u64().unwrap() > 0, "{s}");
        assert!(
            s["server_cpu_pct"].is_number() && s["server_rss_mb"].as_f64().unwrap() > 1.0,
            "{s}"
        );
    }
    assert!(
        run["p50_us"].is_number() && run["packets_per_server_cpu_s"].is_number(),
        "{run}"
    );
}

/// The three scenarios, each with its expected (publishers, players).
const SCENARIOS: [(&[&str], (u64, u64)); 3] = [
    (&["--scenario", "broadcast", "--size", "3"], (1, 3)),
    (&["--scenario", "meeting", "--size", "3"], (3, 6)),
    (
        &["--scenario", "many-rooms", "--size", "2", "--rooms", "2"],
        (2, 4),
    ),
];

#[test]
fn every_scenario_runs_against_gax() {
    let gax = Gax::start(&["--jwt-secret", SECRET, "--workers", "1"]);
    let url = format!("http://{}", gax.http);
    for (args, (publishers, players)) in SCENARIOS {
        let r = run("gax", &url, gax.pid(), args);
        assert_eq!(
            (r["server"].as_str(), r["layers"].as_u64()),
            (Some("gax"), Some(3))
        );
        assert_eq!(
            (r["publishers"].as_u64(), r["players"].as_u64()),
            (Some(publishers), Some(players)),
            "{args:?}"
        );
        check_seconds(&r, players);
    }
    // Players that pin the q layer (`?layer=q` on WHEP) get q's bytes (~0.08 Mbit/s each at
    // 15 fps with audio), far under what the same broadcast carries unpinned (f: ~0.43).
    let unpinned = run("gax", &url, gax.pid(), SCENARIOS[0].0);
    let pinned = run(
        "gax",
        &url,
        gax.pid(),
        &[SCENARIOS[0].0, &["--pin-layer", "q"]].concat(),
    );
    check_seconds(&pinned, 3);
    let mbit = |r: &serde_json::Value| -> Vec<f64> {
        r["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["mbit"].as_f64().unwrap())
            .collect()
    };
    let (q, top) = (mbit(&pinned), mbit(&unpinned));
    assert!(q.iter().all(|m| *m < 0.35), "pinned to q: {q:?}");
    assert!(
        top.last().unwrap() > &(2.0 * q.iter().cloned().fold(0.0, f64::max)),
        "unpinned {top:?} vs pinned {q:?}"
    );
}

/// webrtc-rs (like pion) sends ICE keepalives only while the pair is idle one way, so with
/// media flowing both ways it sends no binding requests after connecting. GAX's ICE-lite agent
/// used to drop such a pair 15 s after the last binding request and end the session (players
/// went silent one by one 15 s after joining); authenticated SRTP/SRTCP now keeps the pair
/// alive (third_party/README.md). A broadcast held for 18 s after a 1 s ramp and 2 s settle
/// must keep every player receiving in every second, and every session must still exist at
/// the end (the generator's DELETEs all succeed).
#[test]
fn webrtc_rs_clients_outlive_the_ice_lite_binding_cutoff() {
    let gax = Gax::start(&["--jwt-secret", SECRET, "--workers", "1"]);
    let url = format!("http://{}", gax.http);
    let hold_s = 18;
    let r = run_holding("gax", &url, gax.pid(), SCENARIOS[0].0, hold_s);
    check_hold(&r, 3, hold_s);
}

/// Janus (VideoRoom only) on a free HTTP port, media on this host's first real IPv4 address;
/// killed when dropped.
struct Janus {
    child: Child,
    url: String,
    _config: tempfile::TempDir,
}

impl Janus {
    fn start() -> Janus {
        let config = tempfile::tempdir().unwrap();
        let ip = common::host_ipv4();
        assert_ne!(
            ip, "127.0.0.1",
            "Janus needs a non-loopback address for media (../shared/RECIPES.md: a veth pair)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/scripts/janus.sh");
        let child = Command::new(script)
            .arg(config.path())
            .args([ip.as_str(), &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start bench/scripts/janus.sh (is janus installed? scripts/test installs it)");
        let mut janus = Janus {
            child,
            url: format!("http://127.0.0.1:{port}/janus"),
            _config: config,
        };
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _, body)) = common::http_get(addr, "/janus/info") {
                assert!(body.contains("janus.plugin.videoroom"), "{body}");
                return janus;
            }
            if let Ok(Some(status)) = janus.child.try_wait() {
                panic!("janus exited: {status}");
            }
            assert!(Instant::now() < deadline, "janus did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_same_scenarios_run_against_janus() {
    let janus = Janus::start();
    for (args, (publishers, players)) in SCENARIOS {
        let r = run("janus", &janus.url, janus.child.id(), args);
        assert_eq!(r["server"].as_str(), Some("janus"));
        assert_eq!(
            (r["publishers"].as_u64(), r["players"].as_u64()),
            (Some(publishers), Some(players)),
            "{args:?}"
        );
        check_seconds(&r, players);
    }
}

/// The soak of issue 14 in small (docs/soak.md has the 10-minute run): messenger sessions
/// sending, typing and marking reads beside media sessions, against one server. Every message
/// is acked, every acked message is in its chat's history at the end, no session errors or
/// drops.
#[test]
fn a_short_soak_with_messenger_sessions_loses_nothing() {
    let gax = Gax::start(&[
        "--jwt-secret",
        SECRET,
        "--workers",
        "1",
        "--rate-limit",
        "signups=off",
    ]);
    let url = format!("http://{}", gax.http);
    let r = run(
        "gax",
        &url,
        gax.pid(),
        &[
            "--scenario",
            "many-rooms",
            "--rooms",
            "2",
            "--size",
            "2",
            "--chat-sockets",
            "30",
            "--chat-every",
            "1s",
        ],
    );
    check_seconds(&r, 4);
    let chat = &r["chat"];
    assert_eq!(chat["sockets"], 30, "{chat}");
    assert!(chat["acked"].as_u64().unwrap() >= 30, "{chat}");
    assert_eq!(chat["acked"], chat["sent"], "every message acked: {chat}");
    assert_eq!(
        (
            chat["lost"].as_u64(),
            chat["errors"].as_u64(),
            chat["disconnects"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{chat}"
    );
    assert!(chat["delivered"].as_u64().unwrap() > 0, "{chat}");
}
