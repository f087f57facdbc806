//! `gax-loadgen` (bench/src/bin/loadgen.rs) against a real `gax serve`: the broadcast and
//! meeting scenarios run end to end with webrtc-rs clients over WHIP and WHEP, every player
//! receives media, and the JSON result has a line per second with the server's CPU and RSS.
//! Only that it works is checked here; how fast is measured by running it (bench/README.md).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Gax;

const SECRET: &str = "loadgen-test-secret-loadgen-test-secret";

/// The generator binary, built next to `gax` by `cargo test --workspace --all-targets`.
fn loadgen_bin() -> PathBuf {
    let gax = PathBuf::from(common::gax_bin());
    let bin = gax.with_file_name("gax-loadgen");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p bench --bin gax-loadgen` (scripts/test builds every target)",
        bin.display()
    );
    bin
}

fn run(scenario: &str, size: &str) -> serde_json::Value {
    // --no-bwe: with estimation on, single-layer video to webrtc-rs players is paced into
    // growing latency (noted in bench/README.md); this test only checks that the run works.
    let gax = Gax::start(&["--jwt-secret", SECRET, "--workers", "1", "--no-bwe"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let result = Command::new(loadgen_bin())
        .args(["--url", &format!("http://{}", gax.http)])
        .args([
            "--jwt-secret",
            SECRET,
            "--scenario",
            scenario,
            "--size",
            size,
        ])
        .args(["--ramp", "1s", "--hold", "3s", "--fps", "15"])
        .args(["--server-pid", &gax.pid().to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run gax-loadgen");
    let log = String::from_utf8_lossy(&result.stderr);
    eprintln!("{log}");
    assert!(result.status.success(), "gax-loadgen failed (log above)");
    assert!(
        log.contains("sessions ended: {200:"),
        "every session ends with 200: {log}"
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

#[test]
fn broadcast_and_meeting_run_against_gax() {
    let run_ = run("broadcast", "3");
    assert_eq!(
        (run_["publishers"].as_u64(), run_["players"].as_u64()),
        (Some(1), Some(3))
    );
    let seconds = run_["seconds"].as_array().unwrap();
    assert_eq!(seconds.len(), 3, "{run_}");
    for s in seconds {
        assert_eq!(s["players"], 3, "{s}");
        assert!(s["packets"].as_u64().unwrap() > 0, "{s}");
        assert!(
            s["server_cpu_pct"].is_number() && s["server_rss_mb"].as_f64().unwrap() > 1.0,
            "{s}"
        );
    }
    assert!(
        run_["p50_us"].is_number() && run_["packets_per_server_cpu_s"].is_number(),
        "{run_}"
    );

    let run_ = run("meeting", "3");
    assert_eq!(
        (run_["publishers"].as_u64(), run_["players"].as_u64()),
        (Some(3), Some(6))
    );
    let received: u64 = run_["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["packets"].as_u64().unwrap())
        .sum();
    assert!(received > 0, "{run_}");
}
