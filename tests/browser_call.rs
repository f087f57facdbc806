//! The call, end to end, in real browsers: headless Chromium with a fake camera and microphone
//! loads the page gax serves, joins through `/?room=R&token=T&autojoin=1` with tokens from
//! `gax token`, and must decode everyone else (see `tests/e2e/call.mjs` for the scenario).
//!
//! Needs Chromium (`/usr/bin/chromium`) and `npm install` in tests/e2e; `scripts/test` sets
//! both up. Set `GAX_SKIP_BROWSER_TESTS=1` to skip on a machine without them (it says so).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn three_join_one_leaves_a_fourth_joins_late() {
    if std::env::var_os("GAX_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("SKIPPED: GAX_SKIP_BROWSER_TESTS is set");
        return;
    }
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: run scripts/test (it installs it) or set CHROMIUM"
    );
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "playwright-core missing: run `npm ci` in tests/e2e (scripts/test does it)"
    );

    let gax = common::Gax::start(&["--workers", "2"]);
    let room = "e2e-call";
    let mut tokens = serde_json::Map::new();
    for name in ["alice", "bob", "carol", "dave"] {
        let t = gax.token(&["--room", room, "--identity", name, "--name", name]);
        tokens.insert(name.into(), t.into());
    }
    let out = Command::new("node")
        .arg(e2e.join("call.mjs"))
        .env("GAX_URL", format!("http://{}", gax.http))
        .env("GAX_ROOM", room)
        .env("GAX_TOKENS", serde_json::Value::Object(tokens).to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser scenario failed (log above)");
    assert!(stdout.contains("\"PASS\""));

    // The media plane saw real traffic and forwarded it.
    let (_, _, metrics) = gax.get("/metrics");
    let forwarded: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("gax_media_rtp_forwarded_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        forwarded > 1000,
        "forwarded only {forwarded} packets:\n{metrics}"
    );
}
