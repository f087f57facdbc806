//! A real S3 server for tests (feature `test-support`): s3s-fs over a directory, served on
//! 127.0.0.1 by the calling test's tokio runtime, with one bucket. Used by this crate's suite
//! and by the end-to-end tests that run `gax serve` against S3.

use std::net::SocketAddr;
use std::path::Path;

use crate::S3Config;

/// Access key the test server accepts.
pub const ACCESS_KEY: &str = "test-key";
/// Secret key the test server accepts.
pub const SECRET_KEY: &str = "test-secret";

/// Starts s3s-fs over `root` (which must exist) with the bucket `bucket` (created as a
/// directory), on a free loopback port, served until the runtime ends. Returns the settings a
/// client needs. Unsigned or wrongly signed requests get 403, as from a real S3.
pub async fn start_s3_server(root: &Path, bucket: &str) -> std::io::Result<(SocketAddr, S3Config)> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;

    std::fs::create_dir_all(root.join(bucket))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    let config = S3Config {
        endpoint: Some(format!("http://{addr}")),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        path_style: true,
        prefix: String::new(),
    };
    Ok((addr, config))
}
