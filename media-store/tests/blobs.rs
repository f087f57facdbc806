//! One suite for both blob backends: every case runs against the local directory backend (a
//! temp dir) and against a real S3 server (s3s-fs, in-process on 127.0.0.1:0, over a temp dir),
//! through the same public `BlobStore` API.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use media_store::{
    BlobConfig, BlobError, BlobId, BlobStore, ByteRange, PartInfo, UploadId, MIN_PART_SIZE,
};
use sha2::{Digest, Sha256};

/// A store plus the directory its backend writes to, to check that nothing is left behind.
struct Fixture {
    store: BlobStore,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Every regular file under the backend's directory.
    fn files(&self) -> BTreeSet<PathBuf> {
        fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.insert(e.path());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root, &mut out);
        out
    }
}

async fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = BlobStore::open(&BlobConfig::Local { dir: root.clone() })
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "local");
    Fixture {
        store,
        root,
        _dir: dir,
    }
}

/// A real S3 server (s3s-fs, in process on loopback) with one bucket.
async fn s3() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (_, config) = media_store::testing::start_s3_server(&root, "media")
        .await
        .unwrap();
    let store = BlobStore::open(&BlobConfig::S3(config)).await.unwrap();
    assert_eq!(store.backend_name(), "s3");
    Fixture {
        store,
        root,
        _dir: dir,
    }
}

fn assert_send<T: Send>(_: &T) {}

/// Deterministic, non-repeating-looking test bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `bytes` as a stream of `chunk`-sized pieces.
fn chunks(
    bytes: &[u8],
    chunk: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let v: Vec<_> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(v)
}

async fn read_all(
    store: &BlobStore,
    id: &BlobId,
    range: Option<&str>,
) -> Result<(Vec<u8>, u64), BlobError> {
    let range = range.map(ByteRange::parse).transpose()?;
    let got = store.get(id, range).await?;
    let mut body = got.body;
    let mut out = Vec::new();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c?);
    }
    if let Some(r) = got.range {
        assert_eq!(r.len(), out.len() as u64);
    } else {
        assert_eq!(got.total, out.len() as u64);
    }
    Ok((out, got.total))
}

/// Whether an upload is gone (finished, aborted or never started). Local and real S3 answer
/// `NotFound` (NoSuchUpload); s3s-fs does not check the upload id in ListParts and lists nothing.
async fn upload_gone(store: &BlobStore, upload: &UploadId) -> bool {
    match store.list_parts(upload).await {
        Err(e) => store.backend_name() == "s3" || matches!(e, BlobError::NotFound(_)),
        Ok(parts) => store.backend_name() == "s3" && parts.is_empty(),
    }
}

async fn roundtrip(f: Fixture) {
    let s = &f.store;
    for (len, chunk) in [
        (0usize, 1usize),
        (1, 1),
        (100_000, 7_000),
        (9 * 1024 * 1024 + 123, 1 << 20),
    ] {
        let bytes = data(len, 1);
        let id = BlobId::generate();
        let put = s.put(&id, chunks(&bytes, chunk), 64 << 20);
        assert_send(&put); // usable from axum handlers
        let stored = put.await.unwrap();
        assert_eq!(stored.size, len as u64);
        assert_eq!(stored.sha256, sha_hex(&bytes), "len {len}");
        assert_eq!(s.head(&id).await.unwrap().size, len as u64);
        let (back, total) = read_all(s, &id, None).await.unwrap();
        assert_eq!(total, len as u64);
        assert!(back == bytes, "content differs for len {len}");
    }
    // Same id again replaces the blob.
    let id = BlobId::generate();
    s.put(&id, chunks(b"first", 2), 100).await.unwrap();
    s.put(&id, chunks(b"second!", 2), 100).await.unwrap();
    assert_eq!(read_all(s, &id, None).await.unwrap().0, b"second!");
    // Delete, then it is gone; deleting again is fine.
    s.delete(&id).await.unwrap();
    assert!(matches!(s.head(&id).await, Err(BlobError::NotFound(_))));
    assert!(matches!(
        s.get(&id, None).await,
        Err(BlobError::NotFound(_))
    ));
    s.delete(&id).await.unwrap();
}

async fn size_limit(f: Fixture) {
    let s = &f.store;
    let before = f.files();
    // Small file, over a small limit.
    let id = BlobId::generate();
    let r = s.put(&id, chunks(&data(3000, 2), 500), 2999).await;
    assert!(
        matches!(r, Err(BlobError::TooLarge { limit: 2999 })),
        "{r:?}"
    );
    assert!(matches!(s.head(&id).await, Err(BlobError::NotFound(_))));
    // Large file: on S3 this fails after a multipart upload has started.
    let r = s
        .put(&id, chunks(&data(10 << 20, 3), 1 << 20), 9 << 20)
        .await;
    assert!(matches!(r, Err(BlobError::TooLarge { .. })), "{r:?}");
    assert!(matches!(s.head(&id).await, Err(BlobError::NotFound(_))));
    // The client's stream fails midway.
    let broken = stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 6 << 20])),
        Ok(Bytes::from(vec![2u8; 3 << 20])),
        Err(std::io::Error::other("connection reset")),
    ]);
    let r = s.put(&id, broken, 64 << 20).await;
    assert!(matches!(r, Err(BlobError::Stream(_))), "{r:?}");
    assert!(matches!(s.head(&id).await, Err(BlobError::NotFound(_))));
    assert_eq!(
        f.files(),
        before,
        "an over-limit or failed upload left files behind"
    );
    // Exactly at the limit is fine.
    let stored = s.put(&id, chunks(&data(3000, 2), 500), 3000).await.unwrap();
    assert_eq!(stored.size, 3000);
}

async fn sniffing(f: Fixture) {
    let s = &f.store;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(data(200, 4));
    let mut jpeg = b"\xff\xd8\xff\xe0\0\x10JFIF\0".to_vec();
    jpeg.extend(data(200, 5));
    let mut mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec();
    mp4.extend(data(200, 6));
    // EBML header with DocType "webm".
    let mut webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02".to_vec();
    webm.extend(data(200, 7));
    let mut ogg = b"OggS\0\x02\0\0\0\0\0\0\0\0".to_vec();
    ogg.extend(data(200, 8));
    let mut exe = b"<html><script>".to_vec(); // a client might declare this image/png
    exe.extend(data(10, 9));
    let cases: [(&[u8], &str); 6] = [
        (&png, "image/png"),
        (&jpeg, "image/jpeg"),
        (&mp4, "video/mp4"),
        (&webm, "video/webm"),
        (&ogg, "audio/ogg"),
        (&data(300, 10), media_store::OCTET_STREAM),
    ];
    for (bytes, expected) in cases {
        let id = BlobId::generate();
        // Chunks of 3 bytes: sniffing must see across chunk boundaries.
        let stored = s.put(&id, chunks(bytes, 3), 1 << 20).await.unwrap();
        assert_eq!(stored.content_type, expected);
    }
    // The API takes no declared type at all; an HTML file is not an image whatever the client says.
    let stored = s
        .put(&BlobId::generate(), chunks(&exe, 4), 1 << 20)
        .await
        .unwrap();
    assert_ne!(stored.content_type, "image/png");
    assert_eq!(media_store::sniff(&png), "image/png");
}

async fn ranges(f: Fixture) {
    let s = &f.store;
    let bytes = data(10_000, 11);
    let id = BlobId::generate();
    s.put(&id, chunks(&bytes, 4096), 1 << 20).await.unwrap();
    let get = |r: &'static str| read_all(s, &id, Some(r));
    assert_eq!(
        get("bytes=0-99").await.unwrap(),
        (bytes[..100].to_vec(), 10_000)
    );
    assert_eq!(get("bytes=5000-5009").await.unwrap().0, &bytes[5000..5010]);
    assert_eq!(get("bytes=-10").await.unwrap().0, &bytes[9990..]);
    assert_eq!(get("bytes=9000-").await.unwrap().0, &bytes[9000..]);
    assert_eq!(get("bytes=9999-20000").await.unwrap().0, &bytes[9999..]);
    let got = s
        .get(&id, Some(ByteRange::parse("bytes=10-19").unwrap()))
        .await
        .unwrap();
    assert_eq!(
        got.range.unwrap().content_range(got.total),
        "bytes 10-19/10000"
    );
    for r in ["bytes=10000-", "bytes=20000-30000"] {
        let e = s
            .get(&id, Some(ByteRange::parse(r).unwrap()))
            .await
            .unwrap_err();
        assert!(
            matches!(e, BlobError::RangeNotSatisfiable { size: 10_000 }),
            "{r}: {e:?}"
        );
        assert_eq!(e.http_status(), 416);
    }
    for r in ["bytes=9-1", "bytes=x-", "bytes=0-1,5-6", "lines=1-2"] {
        let e = get(r).await.unwrap_err();
        assert!(matches!(e, BlobError::MalformedRange(_)), "{r}: {e:?}");
        assert_eq!(e.http_status(), 400);
    }
    let missing = BlobId::generate();
    assert!(matches!(
        s.get(&missing, Some(ByteRange::From(0))).await,
        Err(BlobError::NotFound(_))
    ));
}

async fn resumed_multipart(f: Fixture) {
    let s = &f.store;
    let min = MIN_PART_SIZE as usize;
    let parts = [data(min, 21), data(min + 17, 22), data(1234, 23)];
    let id = BlobId::generate();
    let upload = s.start_upload(&id).await.unwrap();
    s.put_part(&upload, 1, parts[0].clone().into())
        .await
        .unwrap();
    s.put_part(&upload, 2, parts[1].clone().into())
        .await
        .unwrap();
    // "Lose the connection": all the client kept is the upload id (e.g. round-tripped as JSON).
    let saved = serde_json::to_string(&upload).unwrap();
    drop(upload);
    let upload: UploadId = serde_json::from_str(&saved).unwrap();
    let listed = s.list_parts(&upload).await.unwrap();
    assert_eq!(
        listed,
        vec![
            PartInfo {
                number: 1,
                size: min as u64
            },
            PartInfo {
                number: 2,
                size: min as u64 + 17
            }
        ]
    );
    // Not a blob yet.
    assert!(matches!(s.head(&id).await, Err(BlobError::NotFound(_))));
    s.put_part(&upload, 3, parts[2].clone().into())
        .await
        .unwrap();
    let stored = s.complete(&upload).await.unwrap();
    let whole = parts.concat();
    assert_eq!(stored.size, whole.len() as u64);
    assert_eq!(stored.sha256, sha_hex(&whole));
    assert!(read_all(s, &id, None).await.unwrap().0 == whole);
    assert_eq!(
        read_all(s, &id, Some("bytes=-1234")).await.unwrap().0,
        parts[2]
    );
    // A finished upload is gone.
    assert!(upload_gone(s, &upload).await);
}

async fn part_rules(f: Fixture) {
    let s = &f.store;
    let id = BlobId::generate();
    let upload = s.start_upload(&id).await.unwrap();
    for n in [0, 10_001] {
        let e = s
            .put_part(&upload, n, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::InvalidPartNumber(_)), "{e:?}");
    }
    assert!(matches!(
        s.complete(&upload).await,
        Err(BlobError::MissingParts(_))
    ));
    // A small part that is not the last.
    s.put_part(&upload, 1, Bytes::from(data(1000, 31)))
        .await
        .unwrap();
    s.put_part(&upload, 2, Bytes::from(data(1000, 32)))
        .await
        .unwrap();
    let e = s.complete(&upload).await.unwrap_err();
    assert!(
        matches!(
            e,
            BlobError::PartTooSmall {
                part: 1,
                size: 1000
            }
        ),
        "{e:?}"
    );
    // Re-sending part 1 at full size replaces it; a gap (no part 3, but a part 4) is refused.
    s.put_part(&upload, 1, Bytes::from(data(MIN_PART_SIZE as usize, 33)))
        .await
        .unwrap();
    s.put_part(&upload, 4, Bytes::from(data(10, 34)))
        .await
        .unwrap();
    assert!(matches!(
        s.complete(&upload).await,
        Err(BlobError::MissingParts(_))
    ));
    s.abort(&upload).await.unwrap();
    // A single small part is a valid (last) part.
    let upload = s.start_upload(&id).await.unwrap();
    s.put_part(&upload, 1, Bytes::from_static(b"tiny"))
        .await
        .unwrap();
    assert_eq!(s.complete(&upload).await.unwrap().size, 4);
}

async fn abort_leaves_nothing(f: Fixture) {
    let s = &f.store;
    let before = f.files();
    let id = BlobId::generate();
    let upload = s.start_upload(&id).await.unwrap();
    s.put_part(&upload, 1, Bytes::from(data(MIN_PART_SIZE as usize, 41)))
        .await
        .unwrap();
    s.put_part(&upload, 2, Bytes::from(data(100, 42)))
        .await
        .unwrap();
    assert_ne!(f.files(), before);
    s.abort(&upload).await.unwrap();
    assert!(upload_gone(s, &upload).await);
    assert!(s.complete(&upload).await.is_err());
    assert!(matches!(s.head(&id).await, Err(BlobError::NotFound(_))));
    assert_eq!(f.files(), before, "abort left files behind");
}

async fn bad_ids(f: Fixture) {
    let s = &f.store;
    for bad in [
        "",
        "../x",
        "a/b",
        "..",
        ".hidden",
        "a b",
        "%2e%2e",
        &"x".repeat(65),
    ] {
        let e = BlobId::parse(bad).unwrap_err();
        assert!(matches!(e, BlobError::InvalidId(_)), "{bad:?}");
        assert_eq!(e.http_status(), 400);
    }
    // An upload id is checked too (local: it names a directory).
    let forged = UploadId {
        blob: BlobId::generate(),
        upload: "../../objects".into(),
    };
    match s.list_parts(&forged).await {
        Err(BlobError::InvalidId(_)) => assert_eq!(s.backend_name(), "local"),
        // S3 gets the upload id as a query parameter, not a path; s3s-fs lists nothing.
        other => assert!(upload_gone(s, &forged).await, "{other:?}"),
    }
    assert!(s
        .put_part(&forged, 1, Bytes::from_static(b"x"))
        .await
        .is_err());
    // A well-formed blob id for an upload that does not exist.
    let unknown = UploadId {
        blob: BlobId::generate(),
        upload: "0123456789abcdef0123456789abcdef".into(),
    };
    assert!(upload_gone(s, &unknown).await);
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod local_dir {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::local().await).await
            })*
        }
        mod s3_server {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::s3().await).await
            })*
        }
    };
}

suite!(
    roundtrip,
    size_limit,
    sniffing,
    ranges,
    resumed_multipart,
    part_rules,
    abort_leaves_nothing,
    bad_ids
);
