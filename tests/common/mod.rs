//! Shared helpers for end-to-end tests: start a real `gax serve` on free ports, talk HTTP.

#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod pg;
pub mod sdp;
pub mod ws;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `gax serve` child process; killed on drop.
pub struct Gax {
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    child: Child,
    /// The data dir outlives this process (a restart test reuses it).
    keep_data: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The `gax` binary under test.
pub fn gax_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gax")
}

impl Gax {
    /// Starts `gax serve` with its own data dir, HTTP port and ephemeral media ports.
    pub fn start(extra: &[&str]) -> Gax {
        let data_dir = Self::fresh_data_dir();
        let _ = std::fs::remove_dir_all(&data_dir);
        Self::start_in(&data_dir, extra, false)
    }

    /// A data dir path no other test uses.
    pub fn fresh_data_dir() -> PathBuf {
        std::env::temp_dir().join(format!("gax-test-{}-{}", std::process::id(), free_port()))
    }

    /// Starts `gax serve` on `data_dir`; `keep_data` leaves the directory behind on drop.
    pub fn start_in(data_dir: &std::path::Path, extra: &[&str], keep_data: bool) -> Gax {
        let data_dir = data_dir.to_path_buf();
        // Retry on the rare race where another process takes the port we picked.
        for _ in 0..5 {
            let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let child = Command::new(gax_bin())
                .args(["serve", "--listen", &http.to_string(), "--media-port", "0"])
                .arg("--data-dir")
                .arg(&data_dir)
                .args(extra)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn gax");
            let mut gax = Gax {
                http,
                data_dir: data_dir.clone(),
                child,
                keep_data,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = gax.child.try_wait() {
                    break;
                }
                if let Ok((200, _, _)) = http_get(http, "/healthz") {
                    return gax;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = gax.child.kill();
        }
        panic!("gax did not become healthy");
    }

    /// Mints a token with `gax token` against this server's data dir.
    pub fn token(&self, args: &[&str]) -> String {
        let out = Command::new(gax_bin())
            .arg("token")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .expect("run gax token");
        assert!(
            out.status.success(),
            "gax token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn get(&self, path: &str) -> (u16, String, String) {
        http_get(self.http, path).expect("http get")
    }

    /// A metric of `/metrics` (its name without labels), summed over all its label sets.
    pub fn metric(&self, name: &str) -> u64 {
        metric_sum(&self.get("/metrics").2, name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status success.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Gax {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

impl Gax {
    /// Kills the process with SIGKILL (no shutdown of any kind) and waits for it.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A metric in Prometheus text (`name` without labels), summed over all its label sets.
pub fn metric_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A minimal HTTP/1.1 GET: (status, headers, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    http_request(addr, "GET", path, None, None, b"")
}

/// A minimal HTTP/1.1 request with an optional bearer token and JSON body:
/// (status, headers, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(split_reply(&String::from_utf8_lossy(&buf)))
}

/// An HTTP/1.1 answer as text: (status, headers, body); status 0 when there is none.
pub fn split_reply(text: &str) -> (u16, String, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

impl Gax {
    /// A JSON API call: (status, parsed body or `Null`).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let ct = (!bytes.is_empty()).then_some("application/json");
        let (status, _, text) =
            http_request(self.http, method, path, token, ct, bytes.as_bytes()).expect("http");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}

/// Registers `name` (password "password-{name}") over REST; returns (access token, user id).
pub fn register(gax: &Gax, name: &str) -> (String, i64) {
    let (status, body) = gax.api(
        "POST",
        "/api/auth/register",
        None,
        Some(serde_json::json!({ "username": name, "password": format!("password-{name}") })),
    );
    assert_eq!(status, 201, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["user"]["id"].as_i64().unwrap(),
    )
}

/// The first global IPv4 address of this host, or loopback when there is none. libnice (the
/// ICE agent of GStreamer and Janus) gathers no loopback candidates while another interface
/// exists, and does not pair them with a loopback candidate, so media must be on a real
/// interface for GStreamer (and Janus) to reach it.
pub fn host_ipv4() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|cidr| cidr.split('/').next())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}
