//! A fresh Postgres schema for one test run, dropped when the value is dropped.
//!
//! `GAX_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) names the
//! server; `skip` makes [`PgSchema::create`] answer `None` (the caller skips, with a note).

use sqlx::Connection;

/// The default test database.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct PgSchema {
    base: String,
    name: String,
    /// The URL `gax serve --database-url` gets: the base URL with this schema as search path.
    pub url: String,
}

impl PgSchema {
    /// Creates a schema named after `tag` (unique per process and call); `None` when
    /// `GAX_TEST_POSTGRES_URL=skip`.
    pub fn create(tag: &str) -> Option<PgSchema> {
        let base =
            std::env::var("GAX_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        if base == "skip" {
            eprintln!("GAX_TEST_POSTGRES_URL=skip: the Postgres run of {tag} is skipped");
            return None;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("gax_{tag}_{}_{nanos:x}", std::process::id());
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&base)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "the Postgres runs need a server at {base} ({e}); start one, point \
                     GAX_TEST_POSTGRES_URL at another, or set GAX_TEST_POSTGRES_URL=skip"
                    )
                });
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&mut c)
                .await
                .unwrap();
        });
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Some(PgSchema { base, name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = tokio::runtime::Runtime::new().map(|rt| {
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {name} CASCADE"))
                        .execute(&mut c)
                        .await;
                }
            })
        });
    }
}
