//! Files over HTTP against a real `gax serve`, one suite on both blob backends: the local
//! directory (with the SQLite default) and a real S3 server (s3s-fs in this test process on
//! loopback, with `gax serve --s3-*` flags, and Postgres for the records when available).
//!
//! Upload (raw, multipart, resumable parts with a dropped connection), download with Range /
//! ETag / If-None-Match / If-Range, access through chat attachments, signed links (valid,
//! altered, expired, for another file), and every refusal of the issue: over the limit, a
//! declared type that disagrees with the bytes, a path as file name, malformed or
//! unsatisfiable ranges, no access, someone else's upload; after each refusal nothing is left
//! in the store.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{register, Gax};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The upload limit the suite runs with.
const LIMIT: usize = 8 << 20;
const MIB: usize = 1 << 20;

/// An HTTP answer with a binary body.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request with arbitrary headers and a binary body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

/// Deterministic bytes of type `kind` ("png", "jpeg" or "bin") and length `len`.
fn bytes(kind: &str, len: usize, seed: u32) -> Vec<u8> {
    let mut out: Vec<u8> = match kind {
        "png" => b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        "jpeg" => vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0],
        _ => b"plain data ".to_vec(),
    };
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out.truncate(len);
    out
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every file under `root` (the blob backend's directory), to prove refusals leave nothing.
/// s3s-fs keeps a deleted object's sidecar metadata (`.bucket-….metadata.json`,
/// `.internal.json`): that is the test server's bookkeeping, not a stored object, so those are
/// not counted; objects and in-progress multipart parts are.
fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&e.path(), out);
            } else if !(name.starts_with(".bucket-")
                && (name.ends_with(".metadata.json") || name.ends_with(".internal.json")))
            {
                out.insert(e.path());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, &mut out);
    out
}

/// A running gax and the directory where its blobs end up.
struct Setup {
    gax: Gax,
    blob_root: PathBuf,
    _s3: Option<(tokio::runtime::Runtime, tempfile::TempDir)>,
    _schema: Option<common::pg::PgSchema>,
}

fn local() -> Setup {
    let limit = LIMIT.to_string();
    let gax = Gax::start(&["--max-upload", &limit]);
    let blob_root = gax.data_dir.join("media");
    Setup {
        gax,
        blob_root,
        _s3: None,
        _schema: None,
    }
}

fn s3() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = rt
        .block_on(media_store::testing::start_s3_server(
            dir.path(),
            "gax-files",
        ))
        .unwrap();
    let endpoint = config.endpoint.clone().unwrap();
    let limit = LIMIT.to_string();
    let mut args: Vec<String> = [
        "--max-upload",
        &limit,
        "--s3-endpoint",
        &endpoint,
        "--s3-bucket",
        "gax-files",
        "--s3-access-key",
        media_store::testing::ACCESS_KEY,
        "--s3-secret-key",
        media_store::testing::SECRET_KEY,
    ]
    .map(String::from)
    .to_vec();
    let schema = common::pg::PgSchema::create("files").inspect(|schema| {
        args.extend(["--database-url".to_owned(), schema.url.clone()]);
    });
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gax = Gax::start(&args);
    Setup {
        gax,
        blob_root: dir.path().to_path_buf(),
        _s3: Some((rt, dir)),
        _schema: schema,
    }
}

/// Raw upload of `data` named `name` with an optional declared type.
fn upload(gax: &Gax, token: &str, name: &str, declared: Option<&str>, data: &[u8]) -> Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(t) = declared {
        headers.push(("Content-Type", t));
    }
    let path = format!("/api/files?name={}", name.replace(' ', "%20"));
    request(gax.http, "POST", &path, &headers, data)
}

fn get(gax: &Gax, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    request(gax.http, "GET", path, &headers, b"")
}

fn suite(setup: Setup) {
    let gax = &setup.gax;
    let (alice, _) = register(gax, "alice");
    let (bob, bob_id) = register(gax, "bob");
    let (carol, _) = register(gax, "carol");

    // --- raw upload and download ---
    let photo = bytes("png", 300_000, 1);
    let r = upload(gax, &alice, "holiday photo.png", Some("image/png"), &photo);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let file = r.json();
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(file["size"], photo.len());
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["name"], "holiday photo.png");
    assert_eq!(file["sha256"], sha_hex(&photo));
    let url = format!("/api/files/{id}");
    assert_eq!(file["url"], url);

    let r = get(gax, &url, Some(&alice), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == photo, "the download is the upload");
    let etag = format!("\"{}\"", sha_hex(&photo));
    assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("inline; filename=\"holiday photo.png\"; filename*=UTF-8''holiday%20photo.png")
    );

    // --- ranges ---
    let r = get(gax, &url, Some(&alice), &[("Range", "bytes=1000-1999")]);
    assert_eq!(r.status, 206);
    assert!(r.body == photo[1000..2000]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000-1999/{}", photo.len()))
    );
    let r = get(gax, &url, Some(&alice), &[("Range", "bytes=-10")]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &photo[photo.len() - 10..])
    );
    let r = get(gax, &url, Some(&alice), &[("Range", "bytes=299990-")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &photo[299_990..]));
    let beyond = format!("bytes={}-", photo.len());
    let r = get(gax, &url, Some(&alice), &[("Range", &beyond)]);
    assert_eq!(r.status, 416);
    assert_eq!(r.json()["error"], "range_not_satisfiable");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", photo.len()))
    );
    for bad in ["bytes=abc", "items=0-1", "bytes=5-1", "bytes=0-1,4-5"] {
        let r = get(gax, &url, Some(&alice), &[("Range", bad)]);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"], "bad_range", "{bad}");
    }

    // --- conditional requests ---
    let r = get(gax, &url, Some(&alice), &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
    let r = get(gax, &url, Some(&alice), &[("If-None-Match", "\"other\"")]);
    assert_eq!(r.status, 200);
    let r = get(
        gax,
        &url,
        Some(&alice),
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(
        (r.status, r.body.len()),
        (200, photo.len()),
        "If-Range mismatch: whole file"
    );
    let r = get(
        gax,
        &url,
        Some(&alice),
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    );
    assert_eq!((r.status, r.body.len()), (206, 10));

    // --- access ---
    let r = get(gax, &url, None, &[]);
    assert_eq!(r.status, 401);
    let r = get(gax, &url, Some("not-a-token"), &[]);
    assert_eq!(r.status, 401);
    let r = get(gax, &url, Some(&bob), &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("file_forbidden"))
    );
    assert_eq!(
        get(gax, "/api/files/nosuchfile", Some(&alice), &[]).status,
        404
    );
    assert_eq!(
        get(gax, "/api/files/..%2F..%2Fetc", Some(&alice), &[]).status,
        404
    );
    let (s, _) = gax.api("GET", &format!("{url}/info"), Some(&bob), None);
    assert_eq!(s, 403);

    // Attached in a chat with bob: bob may read it, carol still not.
    let (s, chat) = gax.api(
        "POST",
        "/api/chats",
        Some(&alice),
        Some(json!({"kind": "group", "title": "trip", "members": [bob_id]})),
    );
    assert_eq!(s, 201, "{chat}");
    let messages = format!("/api/chats/{}/messages", chat["id"]);
    let (s, sent) = gax.api(
        "POST",
        &messages,
        Some(&alice),
        Some(json!({"text": "look", "attachments": [id]})),
    );
    assert_eq!(s, 201, "{sent}");
    assert_eq!(sent["message"]["attachments"], json!([id]));
    let r = get(gax, &url, Some(&bob), &[("Range", "bytes=0-99")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &photo[..100]));
    assert_eq!(get(gax, &url, Some(&carol), &[]).status, 403);
    // The chat's call token names bob but grants the call room only: no files, as `/info`.
    let (s, call) = gax.api(
        "POST",
        &format!("/api/chats/{}/call", chat["id"]),
        Some(&bob),
        None,
    );
    assert_eq!(s, 200, "{call}");
    let call_token = call["token"].as_str().unwrap();
    let r = get(gax, &url, Some(call_token), &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("forbidden")),
        "a call token downloads no file"
    );
    let (s, _) = gax.api("GET", &format!("{url}/info"), Some(call_token), None);
    assert_eq!(s, 403);
    // Attaching a file one may not read is refused, and nothing is sent.
    let carols = upload(gax, &carol, "secret.bin", None, &bytes("bin", 1000, 2));
    let carols_id = carols.json()["id"].as_str().unwrap().to_owned();
    let (s, e) = gax.api(
        "POST",
        &messages,
        Some(&bob),
        Some(json!({"text": "stolen", "attachments": [carols_id]})),
    );
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("file_forbidden")),
        "{e}"
    );
    let (s, e) = gax.api(
        "POST",
        &messages,
        Some(&bob),
        Some(json!({"attachments": ["nosuchfile"]})),
    );
    assert_eq!(
        (s, e["error"].as_str()),
        (404, Some("file_not_found")),
        "{e}"
    );
    let (_, history) = gax.api("GET", &messages, Some(&alice), None);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");

    // --- signed links ---
    let (s, link) = gax.api("POST", &format!("{url}/link"), Some(&bob), Some(json!({})));
    assert_eq!(s, 200, "{link}");
    let link_url = link["url"].as_str().unwrap().to_owned();
    assert!(link_url.starts_with(&format!("{url}?link=")));
    let r = get(gax, &link_url, None, &[("Range", "bytes=10-19")]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &photo[10..20]),
        "a link needs no header"
    );
    // Altered: one character of the signature changed.
    let mut altered = link_url.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let r = get(gax, std::str::from_utf8(&altered).unwrap(), None, &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("link_invalid"))
    );
    // A link to another file.
    let other_path = format!(
        "/api/files/{carols_id}?{}",
        link_url.split_once('?').unwrap().1
    );
    let r = get(gax, &other_path, None, &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("link_invalid"))
    );
    // A user's access token is not a link.
    let r = get(gax, &format!("{url}?link={alice}"), None, &[]);
    assert_eq!(r.status, 403);
    // No link for someone who may not read the file; lifetimes are bounded.
    let (s, _) = gax.api("POST", &format!("{url}/link"), Some(&carol), None);
    assert_eq!(s, 403);
    let (s, _) = gax.api(
        "POST",
        &format!("{url}/link"),
        Some(&alice),
        Some(json!({"ttl_secs": 0})),
    );
    assert_eq!(s, 400);
    // Expired.
    let (s, short) = gax.api(
        "POST",
        &format!("{url}/link"),
        Some(&alice),
        Some(json!({"ttl_secs": 1})),
    );
    assert_eq!(s, 200);
    let expires = short["expires_at"].as_u64().unwrap();
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        <= expires
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = get(gax, short["url"].as_str().unwrap(), None, &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("link_expired"))
    );

    // --- multipart form upload ---
    let jpeg = bytes("jpeg", 50_000, 3);
    let boundary = "gaxboundary7MA4YWxkTrZu0gW";
    let mut form = Vec::new();
    form.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .bytes(),
    );
    form.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").bytes());
    form.extend(&jpeg);
    form.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let auth = format!("Bearer {alice}");
    let r = request(
        gax.http,
        "POST",
        "/api/files",
        &[("Authorization", &auth), ("Content-Type", &ct)],
        &form,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(
        (j["name"].as_str(), j["content_type"].as_str()),
        (Some("me.jpg"), Some("image/jpeg"))
    );
    assert_eq!(j["sha256"], sha_hex(&jpeg));
    // X-File-Name, percent-encoded UTF-8.
    let r = request(
        gax.http,
        "POST",
        "/api/files",
        &[
            ("Authorization", &auth),
            ("X-File-Name", "%D0%BE%D1%82%D1%87%D1%91%D1%82.txt"),
        ],
        b"just text",
    );
    assert_eq!(r.status, 201);
    let j = r.json();
    assert_eq!(
        (j["name"].as_str(), j["content_type"].as_str()),
        (Some("отчёт.txt"), Some("application/octet-stream"))
    );
    let r = get(gax, j["url"].as_str().unwrap(), Some(&alice), &[]);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));

    // --- refusals leave nothing behind ---
    let before = files_under(&setup.blob_root);
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".repeat(20);
    let r = upload(gax, &alice, "cat.png", Some("image/png"), &html);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (415, Some("type_mismatch"))
    );
    let r = upload(
        gax,
        &alice,
        "clip.webm",
        Some("video/webm"),
        &bytes("png", 5000, 4),
    );
    assert_eq!(r.status, 415, "a PNG is not a video");
    let r = upload(gax, &alice, "big.bin", None, &bytes("bin", LIMIT + MIB, 5));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (413, Some("too_large"))
    );
    for name in ["../../etc/passwd", "..", "a%2Fb", "%00x"] {
        let r = upload(gax, &alice, name, None, b"data");
        assert_eq!(r.status, 400, "{name}");
    }
    let r = request(
        gax.http,
        "POST",
        "/api/files",
        &[("Authorization", &auth)],
        b"data",
    );
    assert_eq!(r.status, 400, "a raw upload needs a name");
    let r = request(
        gax.http,
        "POST",
        "/api/files",
        &[("Authorization", &auth), ("X-File-Name", "..%2F..%2Fx")],
        b"data",
    );
    assert_eq!(r.status, 400);
    let no_file = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{boundary}--\r\n");
    let r = request(
        gax.http,
        "POST",
        "/api/files",
        &[("Authorization", &auth), ("Content-Type", &ct)],
        no_file.as_bytes(),
    );
    assert_eq!(r.status, 400, "a form without a file");
    let call_token = gax.token(&["--room", "r1", "--identity", "guest"]);
    assert_eq!(upload(gax, &call_token, "x.bin", None, b"x").status, 403);
    assert_eq!(upload(gax, "garbage", "x.bin", None, b"x").status, 401);
    assert_eq!(
        files_under(&setup.blob_root),
        before,
        "refused uploads left something in the store"
    );

    // --- resumable upload across a dropped connection ---
    let big = bytes("bin", 5 * MIB + 123_456, 6);
    let (s, up) = gax.api(
        "POST",
        "/api/uploads",
        Some(&alice),
        Some(json!({"name": "movie.bin"})),
    );
    assert_eq!(s, 201, "{up}");
    let up_id = up["id"].as_str().unwrap().to_owned();
    assert_eq!(up["min_part_size"], 5 * MIB);
    let part = |n: u32, data: &[u8], token: &str| {
        let a = format!("Bearer {token}");
        request(
            gax.http,
            "PUT",
            &format!("/api/uploads/{up_id}/parts/{n}"),
            &[("Authorization", &a)],
            data,
        )
    };
    assert_eq!(part(1, &big[..5 * MIB], &alice).status, 200);
    // Part 2's connection drops halfway: the server must not keep half a part.
    {
        let mut s = TcpStream::connect(gax.http).unwrap();
        let head = format!(
            "PUT /api/uploads/{up_id}/parts/2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Length: {}\r\n\r\n",
            big.len() - 5 * MIB
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&big[5 * MIB..5 * MIB + 50_000]).unwrap();
    } // dropped
    std::thread::sleep(Duration::from_millis(300));
    let (s, status) = gax.api("GET", &format!("/api/uploads/{up_id}"), Some(&alice), None);
    assert_eq!(s, 200);
    assert_eq!(
        status["parts"],
        json!([{"number": 1, "size": 5 * MIB}]),
        "resume from here"
    );
    let (s, _) = gax.api("GET", &format!("/api/uploads/{up_id}"), Some(&bob), None);
    assert_eq!(s, 404, "someone else's upload");
    assert_eq!(part(2, b"x", &bob).status, 404);
    assert_eq!(part(0, b"x", &alice).status, 400);
    assert_eq!(part(2, &big[5 * MIB..], &alice).status, 200);
    let (s, done) = gax.api(
        "POST",
        &format!("/api/uploads/{up_id}/complete"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 201, "{done}");
    assert_eq!(done["sha256"], sha_hex(&big));
    assert_eq!(done["size"], big.len());
    let r = get(
        gax,
        done["url"].as_str().unwrap(),
        Some(&alice),
        &[("Range", "bytes=5242000-5243999")],
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &big[5_242_000..5_244_000]),
        "across the part boundary"
    );
    let (s, _) = gax.api("GET", &format!("/api/uploads/{up_id}"), Some(&alice), None);
    assert_eq!(s, 404, "a completed upload is gone");
    // A gap is refused; abort drops the parts.
    let (_, up2) = gax.api(
        "POST",
        "/api/uploads",
        Some(&alice),
        Some(json!({"name": "gap.bin"})),
    );
    let up2_id = up2["id"].as_str().unwrap().to_owned();
    let a = format!("Bearer {alice}");
    let r = request(
        gax.http,
        "PUT",
        &format!("/api/uploads/{up2_id}/parts/2"),
        &[("Authorization", &a)],
        b"late part",
    );
    assert_eq!(r.status, 200);
    let (s, e) = gax.api(
        "POST",
        &format!("/api/uploads/{up2_id}/complete"),
        Some(&alice),
        None,
    );
    assert_eq!((s, e["error"].as_str()), (400, Some("bad_parts")), "{e}");
    let (s, _) = gax.api(
        "DELETE",
        &format!("/api/uploads/{up2_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = gax.api(
        "POST",
        "/api/uploads",
        Some(&alice),
        Some(json!({"name": "../x"})),
    );
    assert_eq!(s, 400);

    // --- delete ---
    let (s, e) = gax.api("DELETE", &url, Some(&bob), None);
    assert_eq!((s, e["error"].as_str()), (403, Some("not_file_owner")));
    let stored_before = files_under(&setup.blob_root).len();
    let (s, _) = gax.api("DELETE", &url, Some(&alice), None);
    assert_eq!(s, 204);
    assert_eq!(get(gax, &url, Some(&alice), &[]).status, 404);
    assert_eq!(
        get(gax, &link_url, None, &[]).status,
        404,
        "a link outlives no file"
    );
    assert!(
        files_under(&setup.blob_root).len() < stored_before,
        "the bytes are gone"
    );
    let (s, mine) = gax.api("GET", "/api/files", Some(&alice), None);
    assert_eq!(s, 200);
    let names: BTreeSet<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["me.jpg", "movie.bin", "отчёт.txt"]));
}

#[test]
fn files_on_the_local_backend() {
    suite(local());
}

#[test]
fn files_on_s3() {
    suite(s3());
}

/// The data directory holds password hashes, every message and every upload: it is `0700`, and
/// the database (with its WAL and shared-memory files), the search index, the token secret and
/// the stored objects are readable by the server's user only.
#[cfg(unix)]
#[test]
fn the_data_dir_and_every_file_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let setup = local();
    let gax = &setup.gax;
    let (alice, _) = register(gax, "alice");
    let r = upload(gax, &alice, "notes.txt", None, b"private words");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    fn walk(p: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
        let meta = std::fs::symlink_metadata(p).unwrap();
        out.push((
            p.to_path_buf(),
            meta.permissions().mode() & 0o777,
            meta.is_dir(),
        ));
        if meta.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                walk(&e.path(), out);
            }
        }
    }
    let mut all = Vec::new();
    walk(&gax.data_dir, &mut all);
    let names: Vec<String> = all
        .iter()
        .filter_map(|(p, _, _)| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
    for must in ["gax.db", "gax.db-wal", "gax.db-shm", "objects"] {
        assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
    }
    let open: Vec<_> = all
        .iter()
        .filter(|(_, mode, _)| mode & 0o077 != 0)
        .collect();
    assert!(open.is_empty(), "readable by others: {open:?}");
    let data_dir_mode = all[0].1;
    assert_eq!(data_dir_mode, 0o700);
}
