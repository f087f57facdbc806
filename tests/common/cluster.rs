//! Several `gax serve` nodes sharing one Postgres (a fresh schema) and one Redis (a fresh key
//! prefix), like a real deployment.
//!
//! Redis: `GAX_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); Postgres:
//! `GAX_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`). Either set to
//! `skip` makes [`Cluster::new`] answer `None` (the caller skips, with a note).

use sqlx::Connection;

use super::Gax;

pub struct Cluster {
    pg: String,
    schema: String,
    /// The arguments every node is started with (database, Redis, prefix, shared secret).
    pub args: Vec<String>,
}

impl Cluster {
    /// A fresh schema and prefix named after `name`; `None` when Redis or Postgres is skipped.
    pub async fn new(name: &str) -> Option<Cluster> {
        let redis =
            std::env::var("GAX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let pg = std::env::var("GAX_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if redis == "skip" || pg == "skip" {
            eprintln!("Redis or Postgres skipped: multi-node test {name} skipped");
            return None;
        }
        let schema = format!("gax_{name}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&pg)
            .await
            .expect("Postgres for the multi-node test");
        for sql in [
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            format!("CREATE SCHEMA {schema}"),
        ] {
            sqlx::query(&sql).execute(&mut admin).await.unwrap();
        }
        let sep = if pg.contains('?') { '&' } else { '?' };
        let db = format!("{pg}{sep}options=-c%20search_path%3D{schema}");
        let prefix = format!("gax-test-{name}-{}:", std::process::id());
        // Every node signs tokens with the same secret, like a real cluster.
        let args = [
            "--database-url",
            &db,
            "--redis-url",
            &redis,
            "--redis-prefix",
            &prefix,
            "--jwt-secret",
            "multi-node-test-secret-multi-node-test-secret",
        ]
        .map(str::to_owned)
        .to_vec();
        Some(Cluster { pg, schema, args })
    }

    /// Starts one more node.
    pub fn node(&self) -> Gax {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Gax::start(&args)
    }

    /// Drops the schema (call after the nodes are gone).
    pub async fn cleanup(self) {
        let mut admin = sqlx::PgConnection::connect(&self.pg).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
