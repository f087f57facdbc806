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
