//! Where the external programs the scenarios run (wrk, redis-benchmark, pgbench) are found.

use std::path::PathBuf;

/// A program on PATH, or in PostgreSQL's versioned bin folders (pgbench lives there on Debian).
pub fn find(name: &str) -> Option<PathBuf> {
    which::which_global(name).ok().or_else(|| {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        let dirs = versions.flatten().map(|entry| entry.path().join("bin"));
        which::which_in_global(name, std::env::join_paths(dirs).ok())
            .ok()?
            .next()
    })
}
