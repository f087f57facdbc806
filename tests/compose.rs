//! `docker-compose.yml` is a valid Compose file wiring gax to Postgres, Redis and MinIO.
//! Checked with `docker-compose config` (Debian's `docker-compose`, which `scripts/test`
//! installs; no container engine is needed to validate a file).

use std::process::Command;

#[test]
fn the_compose_file_is_valid_and_wires_the_stack() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(root)
        .output()
        .expect(
            "docker-compose is not installed: run scripts/test, or apt-get install docker-compose",
        );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "docker-compose config refused the file: {stderr}"
    );
    let config = String::from_utf8_lossy(&out.stdout);
    for service in ["gax:", "postgres:", "redis:", "minio:"] {
        assert!(
            config.contains(service),
            "service {service} missing:\n{config}"
        );
    }
    for wiring in [
        "GAX_DATABASE_URL: postgres://gax:gax@postgres:5432/gax",
        "GAX_REDIS_URL: redis://redis:6379",
        "GAX_S3_ENDPOINT: http://minio:9000",
    ] {
        assert!(config.contains(wiring), "{wiring} missing:\n{config}");
    }

    // And a broken file is refused (the check can fail).
    let broken = std::env::temp_dir().join(format!("gax-compose-{}.yml", std::process::id()));
    std::fs::write(&broken, "services:\n  gax:\n    image: [unclosed\n").unwrap();
    let out = Command::new("docker-compose")
        .args(["-f", broken.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&broken);
    assert!(!out.status.success(), "a broken file must be refused");
}
