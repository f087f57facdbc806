//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations/` folders at compile time but does not watch them for new files.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
