//! Running a Playwright scenario from `tests/e2e` in headless Chromium.
//!
//! Needs Chromium (`/usr/bin/chromium`, or `CHROMIUM`) and `npm ci` in tests/e2e;
//! `scripts/test` sets both up. `GAX_SKIP_BROWSER_TESTS=1` skips (each test says so).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Browser tests run one at a time: two cores cannot host two scenarios' pages at once.
pub static BROWSER: Mutex<()> = Mutex::new(());

/// The e2e directory and the Chromium binary, or `None` when browser tests are skipped.
pub fn e2e_dir() -> Option<(PathBuf, String)> {
    if std::env::var_os("GAX_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("SKIPPED: GAX_SKIP_BROWSER_TESTS is set");
        return None;
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
    Some((e2e, chromium))
}

/// Runs `tests/e2e/<script>` with node and `env`; panics with its log unless it prints
/// `"PASS"` and exits 0. Does nothing when browser tests are skipped.
pub fn run_scenario(script: &str, env: &[(&str, String)]) {
    let Some((e2e, chromium)) = e2e_dir() else {
        return;
    };
    let mut cmd = Command::new("node");
    cmd.arg(e2e.join(script)).env("CHROMIUM", &chromium);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "browser scenario {script} failed (log above)"
    );
    assert!(stdout.contains("\"PASS\""));
}

/// Runs Debian's ffmpeg (installed by scripts/test) to make a test file: inputs and codec
/// arguments, then `out`.
pub fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg not found: scripts/test installs it (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg failed making {}", out.display());
}
