//! GAX configuration: one struct, filled from defaults, then an optional TOML file, then
//! environment variables and flags (later wins).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

/// Options every subcommand shares (they locate the data and the token secret).
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// TOML config file; its keys are the long flag names with `_` (e.g. `media_port = 50000`).
    #[arg(long, env = "GAX_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (token secret, later databases and files). [default: ./gax-data]
    #[arg(long, env = "GAX_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Token signing secret (at least 32 characters). [default: generated on first run and kept
    /// in <data-dir>/jwt-secret]
    #[arg(long, env = "GAX_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// Options of `gax serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP address (web client, WebSocket, REST, metrics). [default: 127.0.0.1:8080]
    #[arg(long, env = "GAX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// IP the media UDP sockets bind to. [default: 127.0.0.1; use 0.0.0.0 on a server]
    #[arg(long, env = "GAX_MEDIA_BIND")]
    pub media_bind: Option<IpAddr>,
    /// IP announced to browsers in ICE candidates (your public IP on a server).
    /// [default: the bind IP, or 127.0.0.1 when binding 0.0.0.0]
    #[arg(long, env = "GAX_MEDIA_IP")]
    pub media_ip: Option<IpAddr>,
    /// First media UDP port; worker i uses port + i; 0 picks free ports. [default: 50000]
    #[arg(long, env = "GAX_MEDIA_PORT")]
    pub media_port: Option<u16>,
    /// Media worker threads. [default: number of available cores]
    #[arg(long, env = "GAX_WORKERS")]
    pub workers: Option<usize>,
    /// Development mode: the page may fetch a token from /api/dev/token. Never in production.
    #[arg(long, env = "GAX_DEV")]
    pub dev: bool,
    /// Do not estimate subscribers' bandwidth: simulcast layers then follow tile sizes and the
    /// clients' own caps only (a lab or LAN setting; on by default).
    #[arg(long, env = "GAX_NO_BWE")]
    pub no_bwe: bool,
    /// A call whose media (ICE + DTLS) is not up this long after joining is closed (4410).
    /// [default: 30s]
    #[arg(long, env = "GAX_MEDIA_TIMEOUT", value_parser = humantime::parse_duration)]
    pub media_timeout: Option<Duration>,
    /// How long an access token (from login or refresh) is valid; a messenger session must
    /// send a fresh one before it expires. [default: 15m]
    #[arg(long, env = "GAX_ACCESS_TOKEN_TTL", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Option<Duration>,
    /// An HTTP request's headers must arrive this soon (also how long an idle keep-alive
    /// connection stays open). [default: 10s]
    #[arg(long, env = "GAX_HTTP_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Option<Duration>,
    /// Most HTTP connections (WebSockets included) open at once; kept below the open-files
    /// limit. Over it, /healthz still answers and everything else gets 503. [default: 10000]
    #[arg(long, env = "GAX_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most HTTP connections from one source address; over it, 429. [default: 1000]
    #[arg(long, env = "GAX_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// A quota, as KIND=N/PERIOD or KIND=off; repeat for several. Kinds: sends (messages per
    /// user), signups (accounts per address), uploads (per user), whip (WHIP/WHEP sessions per
    /// token subject), ws_messages (messages per WebSocket session). [default: sends=300/1m,
    /// signups=10/1h, uploads=200/1h, whip=30/1m, ws_messages=50/1s]
    #[arg(long = "rate-limit", env = "GAX_RATE_LIMITS", value_delimiter = ',')]
    pub rate_limit: Vec<String>,
    /// Database for accounts, chats and messages: a `postgres://` URL, or a SQLite file path
    /// or `sqlite:` URL. [default: <data-dir>/gax.db]
    #[arg(long, env = "GAX_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL: presence, the event bus and watch-party state shared by several nodes.
    /// [default: none, everything in process]
    #[arg(long, env = "GAX_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (several deployments may share one Redis).
    /// [default: gax]
    #[arg(long, env = "GAX_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Largest file accepted by uploads, in bytes or with a unit (`500MiB`, `2GiB`, `10MB`).
    /// [default: 1GiB]
    #[arg(long, env = "GAX_MAX_UPLOAD", value_parser = parse_size)]
    pub max_upload: Option<u64>,
    /// S3 bucket for uploaded files (must exist). Setting it selects the S3 backend.
    /// [default: none, files in <data-dir>/media]
    #[arg(long, env = "GAX_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint, e.g. `http://minio:9000` (path-style addressing is then used).
    /// [default: AWS]
    #[arg(long, env = "GAX_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region. [default: us-east-1]
    #[arg(long, env = "GAX_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "GAX_S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "GAX_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// Prefix of every object key (to share a bucket). [default: none]
    #[arg(long, env = "GAX_S3_PREFIX")]
    pub s3_prefix: Option<String>,
}

/// `1048576`, `500MiB`, `2GiB`, `10MB`, `64k`: a byte count (binary units for `Ki/Mi/Gi`,
/// decimal for `k/M/G`, case-insensitive, an optional `B`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 500MiB)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "ki" => 1 << 10,
        "m" => 1_000_000,
        "mi" => 1 << 20,
        "g" => 1_000_000_000,
        "gi" => 1 << 30,
        "t" => 1_000_000_000_000,
        "ti" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown unit in {text:?} (use KiB, MiB, GiB, kB, MB, GB)"
            ))
        }
    };
    n.checked_mul(factor)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} must be between 1 byte and 16 EiB"))
}

/// Keys accepted in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    jwt_secret: Option<String>,
    listen: Option<SocketAddr>,
    media_bind: Option<IpAddr>,
    media_ip: Option<IpAddr>,
    media_port: Option<u16>,
    workers: Option<usize>,
    dev: Option<bool>,
    bwe: Option<bool>,
    /// e.g. "30s"
    media_timeout: Option<String>,
    /// e.g. "15m"
    access_token_ttl: Option<String>,
    /// e.g. "10s"
    http_header_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    /// e.g. `[rate_limits]` with `sends = "300/1m"`, `signups = "off"`
    rate_limits: Option<std::collections::BTreeMap<String, String>>,
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    /// e.g. "1GiB"
    max_upload: Option<String>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key: Option<String>,
    s3_secret_key: Option<String>,
    s3_prefix: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub jwt_secret: Option<String>,
    pub listen: SocketAddr,
    pub media_bind: IpAddr,
    pub media_ip: IpAddr,
    pub media_port: u16,
    pub workers: usize,
    pub dev: bool,
    pub media_timeout: Duration,
    pub access_token_ttl: Duration,
    pub http_header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub rate_limits: messaging::RateLimits,
    pub bandwidth_estimation: bool,
    /// `postgres://...`, or a SQLite path / `sqlite:` URL.
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// Largest upload, in bytes.
    pub max_upload: u64,
    /// Where uploaded files live: `<data-dir>/media`, or S3.
    pub blobs: media_store::BlobConfig,
}

/// A positive duration: the flag, else the file's `key` (humantime text, e.g. "30s"), else
/// `default`.
fn duration(
    key: &str,
    flag: Option<Duration>,
    file: &Option<String>,
    default: Duration,
) -> anyhow::Result<Duration> {
    let d = match (flag, file) {
        (Some(d), _) => d,
        (None, Some(text)) => humantime::parse_duration(text)
            .with_context(|| format!("{key} = {text:?} in the config file"))?,
        (None, None) => default,
    };
    anyhow::ensure!(!d.is_zero(), "{key} must be positive");
    Ok(d)
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl Config {
    /// Resolves the configuration: flags/env over the file over defaults.
    pub fn resolve(common: &CommonArgs, serve: Option<&ServeArgs>) -> anyhow::Result<Config> {
        let file = read_file(common.config.as_deref())?;
        let s = serve.cloned();
        let media_bind = s
            .as_ref()
            .and_then(|s| s.media_bind)
            .or(file.media_bind)
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let media_ip = s
            .as_ref()
            .and_then(|s| s.media_ip)
            .or(file.media_ip)
            .unwrap_or(if media_bind.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                media_bind
            });
        let jwt_secret = common.jwt_secret.clone().or(file.jwt_secret);
        if let Some(secret) = &jwt_secret {
            anyhow::ensure!(
                secret.len() >= 32,
                "the token secret must be at least 32 characters"
            );
        }
        let media_timeout = duration(
            "media_timeout",
            s.as_ref().and_then(|s| s.media_timeout),
            &file.media_timeout,
            Duration::from_secs(30),
        )?;
        let access_token_ttl = duration(
            "access_token_ttl",
            s.as_ref().and_then(|s| s.access_token_ttl),
            &file.access_token_ttl,
            Duration::from_secs(15 * 60),
        )?;
        let http_header_timeout = duration(
            "http_header_timeout",
            s.as_ref().and_then(|s| s.http_header_timeout),
            &file.http_header_timeout,
            Duration::from_secs(10),
        )?;
        let max_connections = s
            .as_ref()
            .and_then(|s| s.max_connections)
            .or(file.max_connections)
            .unwrap_or(10_000);
        let max_connections_per_ip = s
            .as_ref()
            .and_then(|s| s.max_connections_per_ip)
            .or(file.max_connections_per_ip)
            .unwrap_or(1_000);
        anyhow::ensure!(
            max_connections > 0 && max_connections_per_ip > 0,
            "max_connections and max_connections_per_ip must be at least 1"
        );
        let mut rate_limits = messaging::RateLimits::default();
        for (kind, quota) in file.rate_limits.iter().flatten() {
            rate_limits
                .set(&format!("{kind}={quota}"))
                .map_err(anyhow::Error::msg)
                .context("[rate_limits] in the config file")?;
        }
        for setting in s.iter().flat_map(|s| &s.rate_limit) {
            rate_limits
                .set(setting)
                .map_err(anyhow::Error::msg)
                .context("--rate-limit")?;
        }
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("gax-data"));
        let database_url = s
            .as_ref()
            .and_then(|s| s.database_url.clone())
            .or(file.database_url)
            .unwrap_or_else(|| data_dir.join("gax.db").to_string_lossy().into_owned());
        let redis_url = s
            .as_ref()
            .and_then(|s| s.redis_url.clone())
            .or(file.redis_url);
        let redis_prefix = s
            .as_ref()
            .and_then(|s| s.redis_prefix.clone())
            .or(file.redis_prefix)
            .unwrap_or_else(|| "gax".into());
        let max_upload = match (s.as_ref().and_then(|s| s.max_upload), &file.max_upload) {
            (Some(n), _) => n,
            (None, Some(text)) => parse_size(text)
                .map_err(anyhow::Error::msg)
                .context("max_upload in the config file")?,
            (None, None) => 1 << 30,
        };
        let pick = |flag: Option<&String>, file: &Option<String>| {
            flag.cloned()
                .or_else(|| file.clone())
                .filter(|v| !v.is_empty())
        };
        let blobs = match pick(
            s.as_ref().and_then(|s| s.s3_bucket.as_ref()),
            &file.s3_bucket,
        ) {
            None => media_store::BlobConfig::Local {
                dir: data_dir.join("media"),
            },
            Some(bucket) => {
                let endpoint = pick(
                    s.as_ref().and_then(|s| s.s3_endpoint.as_ref()),
                    &file.s3_endpoint,
                );
                let access_key = pick(
                    s.as_ref().and_then(|s| s.s3_access_key.as_ref()),
                    &file.s3_access_key,
                )
                .context(
                    "the S3 backend needs an access key (--s3-access-key, GAX_S3_ACCESS_KEY)",
                )?;
                let secret_key = pick(
                    s.as_ref().and_then(|s| s.s3_secret_key.as_ref()),
                    &file.s3_secret_key,
                )
                .context(
                    "the S3 backend needs a secret key (--s3-secret-key, GAX_S3_SECRET_KEY)",
                )?;
                media_store::BlobConfig::S3(media_store::S3Config {
                    path_style: endpoint.is_some(),
                    endpoint,
                    bucket,
                    region: pick(
                        s.as_ref().and_then(|s| s.s3_region.as_ref()),
                        &file.s3_region,
                    )
                    .unwrap_or_else(|| "us-east-1".into()),
                    access_key,
                    secret_key,
                    prefix: pick(
                        s.as_ref().and_then(|s| s.s3_prefix.as_ref()),
                        &file.s3_prefix,
                    )
                    .unwrap_or_default(),
                })
            }
        };
        Ok(Config {
            max_upload,
            blobs,
            database_url,
            redis_url,
            redis_prefix,
            bandwidth_estimation: !s.as_ref().is_some_and(|s| s.no_bwe) && file.bwe.unwrap_or(true),
            media_timeout,
            access_token_ttl,
            http_header_timeout,
            max_connections,
            max_connections_per_ip,
            rate_limits,
            data_dir,
            jwt_secret,
            listen: s
                .as_ref()
                .and_then(|s| s.listen)
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            media_bind,
            media_ip,
            media_port: s
                .as_ref()
                .and_then(|s| s.media_port)
                .or(file.media_port)
                .unwrap_or(50000),
            workers: s
                .as_ref()
                .and_then(|s| s.workers)
                .or(file.workers)
                .unwrap_or(0),
            dev: s.as_ref().is_some_and(|s| s.dev) || file.dev.unwrap_or(false),
        })
    }

    /// The database URL with any password hidden, for logs and errors.
    pub fn database_url_redacted(&self) -> String {
        redact(&self.database_url)
    }

    /// The token keys: the configured secret, or the one kept in the data directory.
    pub fn token_keys(&self) -> anyhow::Result<messaging::auth::TokenKeys> {
        match &self.jwt_secret {
            Some(s) => Ok(messaging::auth::TokenKeys::from_secret(s.as_bytes())),
            None => Ok(messaging::auth::TokenKeys::load_or_create(&self.data_dir)?),
        }
    }
}

/// `scheme://user:secret@host/...` -> `scheme://user:***@host/...`; anything else unchanged.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact("postgres://gax:hunter2@db:5432/gax"),
            "postgres://gax:***@db:5432/gax"
        );
        assert_eq!(redact("postgres://gax@db/gax"), "postgres://gax@db/gax");
        assert_eq!(redact("gax-data/gax.db"), "gax-data/gax.db");
    }

    fn common(config: Option<PathBuf>) -> CommonArgs {
        CommonArgs {
            config,
            data_dir: None,
            jwt_secret: None,
        }
    }

    fn serve() -> ServeArgs {
        ServeArgs {
            listen: None,
            media_bind: None,
            media_ip: None,
            media_port: None,
            workers: None,
            dev: false,
            no_bwe: false,
            media_timeout: None,
            access_token_ttl: None,
            http_header_timeout: None,
            max_connections: None,
            max_connections_per_ip: None,
            rate_limit: Vec::new(),
            database_url: None,
            redis_url: None,
            redis_prefix: None,
            max_upload: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key: None,
            s3_secret_key: None,
            s3_prefix: None,
        }
    }

    #[test]
    fn sizes_and_the_blob_backend() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("64k"), Ok(64_000));
        for bad in [
            "",
            "MiB",
            "-1",
            "0",
            "1.5GiB",
            "3 parsecs",
            "99999999999TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let c = Config::resolve(&common(None), Some(&serve())).unwrap();
        assert_eq!(c.max_upload, 1 << 30);
        assert_eq!(
            c.blobs,
            media_store::BlobConfig::Local {
                dir: PathBuf::from("gax-data/media")
            }
        );
        let mut s = serve();
        s.s3_bucket = Some("gax".into());
        s.s3_endpoint = Some("http://127.0.0.1:9000".into());
        s.s3_access_key = Some("k".into());
        assert!(
            Config::resolve(&common(None), Some(&s)).is_err(),
            "a bucket without a secret key is refused"
        );
        s.s3_secret_key = Some("s".into());
        s.max_upload = Some(5);
        let c = Config::resolve(&common(None), Some(&s)).unwrap();
        assert_eq!(c.max_upload, 5);
        let media_store::BlobConfig::S3(s3) = c.blobs else {
            panic!("expected S3");
        };
        assert!(s3.path_style && s3.region == "us-east-1" && s3.bucket == "gax");
    }

    #[test]
    fn defaults_are_local_and_embedded() {
        let c = Config::resolve(&common(None), Some(&serve())).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("gax-data"));
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.media_bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.media_port, 50000);
        assert_eq!(c.workers, 0, "0 = one per core");
        assert!(!c.dev);
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("gax-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gax.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmedia_port = 40000\nworkers = 3\nmedia_bind = \"0.0.0.0\"\n",
        )
        .unwrap();
        let mut s = serve();
        s.media_port = Some(41000);
        let c = Config::resolve(&common(Some(file.clone())), Some(&s)).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap(), "from the file");
        assert_eq!(c.media_port, 41000, "the flag wins");
        assert_eq!(c.workers, 3);
        assert_eq!(
            c.media_ip,
            IpAddr::from([127, 0, 0, 1]),
            "binding 0.0.0.0 advertises loopback unless told"
        );

        std::fs::write(&file, "lissen = \"x\"\n").unwrap();
        let err = Config::resolve(&common(Some(file.clone())), Some(&serve())).unwrap_err();
        assert!(
            format!("{err:#}").contains("lissen"),
            "unknown keys are named: {err:#}"
        );

        let mut c = common(None);
        c.jwt_secret = Some("short".into());
        assert!(
            Config::resolve(&c, None).is_err(),
            "short secrets are refused"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
