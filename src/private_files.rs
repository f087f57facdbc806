//! The server's files are its own: the data directory is created `0700` and every file and
//! directory the process creates afterwards (SQLite's `gax.db`, `-wal`, `-shm`, the search
//! index, uploaded objects, the token secret) is `0600` / `0700`, whoever creates it (our code,
//! SQLite, tantivy). They hold password hashes, every message and every upload.

use std::path::Path;

/// Sets the process's file-creation mask to `077`: new files `0600`, new directories `0700`.
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask(2) only swaps the process's creation mask; it cannot fail and touches no
    // memory of ours. It runs at start, before any thread creates files.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and its parents) as `0700`; an existing `dir` that others may read is
/// narrowed to `0700`, with a warning, since it was made by an earlier version or by hand.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{mode:o}"),
                "the data dir was open to other users; narrowing it to 0700"
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_0700_and_an_open_one_is_narrowed() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);

        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
    }
}
