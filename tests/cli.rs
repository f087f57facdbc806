//! The `gax` command line: `gax token` output and its refusals, `--help` documenting options.

mod common;

use std::process::Command;

fn gax(args: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("gax-cli-test-{}", std::process::id()));
    Command::new(common::gax_bin())
        .arg("--data-dir")
        .arg(&dir)
        .args(args)
        .output()
        .expect("run gax")
}

#[test]
fn token_prints_one_jwt() {
    let out = gax(&["token", "--room", "r", "--identity", "i", "--ttl", "30m"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(
        text.trim().split('.').count(),
        3,
        "header.payload.signature"
    );
}

#[test]
fn token_refuses_bad_arguments() {
    for args in [
        &["token", "--room", "", "--identity", "i"][..],
        &["token", "--room", "r", "--identity", ""],
        &["token", "--room", "r", "--identity", "i", "--ttl", "soon"],
        &["token", "--room", "r", "--identity", "i", "--ttl", "0s"],
        &["token", "--identity", "i"],
        &[
            "token",
            "--room",
            "r",
            "--identity",
            "i",
            "--jwt-secret",
            "short",
        ],
    ] {
        let out = gax(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!out.stderr.is_empty(), "{args:?} should say why");
        assert!(out.stdout.is_empty(), "{args:?} printed a token");
    }
}

#[test]
fn serve_help_documents_every_option() {
    let out = gax(&["serve", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--media-bind",
        "--media-ip",
        "--media-port",
        "--workers",
        "--dev",
        "--no-bwe",
        "--media-timeout",
        "--data-dir",
        "--config",
        "--jwt-secret",
        "GAX_LISTEN",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
}

/// `--dev` opens a token endpoint to everyone: the server says so loudly at start, as a
/// warning that names the danger, not only `dev=true` in the startup line.
#[test]
fn dev_mode_warns_loudly_at_start() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("gax-cli-dev-{}", std::process::id()));
    let mut child = Command::new(common::gax_bin())
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--media-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn gax");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("DEVELOPMENT MODE") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let warning = warning.unwrap_or_else(|| panic!("no --dev warning in: {seen:#?}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("any call room"), "{warning}");
}

#[test]
fn an_admin_token_needs_no_room() {
    let out = gax(&["token", "--admin", "--identity", "ops", "--ttl", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().split('.').count(), 3);
}
