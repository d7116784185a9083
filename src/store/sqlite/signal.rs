//! A small file beside the database whose content moves whenever credentials change.
//!
//! Reading 8 bytes with `pread` costs far less than a query, so the auth cache can check it on
//! every request: a change made by the CLI holds on the server's very next request. The
//! change log in the database stays the source of truth; this file only says "look now".

use crate::store::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Signal {
    file: Option<File>,
    /// This process's own changes, for in-memory databases and as a fallback.
    local: AtomicU64,
}

impl Signal {
    pub fn in_process() -> Self {
        Self {
            file: None,
            local: AtomicU64::new(0),
        }
    }

    pub fn beside(db_path: &Path) -> Result<Self> {
        let mut path = db_path.as_os_str().to_owned();
        path.push("-signal");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                StoreError::Open(format!("cannot open {}: {e}", Path::new(&path).display()))
            })?;
        Ok(Self {
            file: Some(file),
            local: AtomicU64::new(0),
        })
    }

    /// Moves the signal. Every process that changes credentials calls this after its commit.
    pub fn raise(&self) {
        let local = self.local.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(file) = &self.file {
            // A random value cannot repeat one a reader saw earlier, whoever writes it.
            let value: u64 = rand::random::<u64>() | 1;
            if let Err(error) = file.write_all_at(&value.to_le_bytes(), 0) {
                tracing::warn!(%error, local, "could not raise the change signal; servers notice within a second");
            }
        }
    }

    pub fn read(&self) -> u64 {
        let local = self.local.load(Ordering::SeqCst);
        let mut bytes = [0u8; 8];
        match &self.file {
            Some(file) if file.read_exact_at(&mut bytes, 0).is_ok() => {
                u64::from_le_bytes(bytes) ^ local.rotate_left(32)
            }
            _ => local,
        }
    }
}
