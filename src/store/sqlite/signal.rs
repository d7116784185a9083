//! A small file beside the database whose content moves whenever credentials change.
//!
//! Reading 8 bytes with `pread` costs far less than a query, so the auth cache can check it on
//! every request: a change made by the CLI holds on the server's very next request. The
//! change log in the database stays the source of truth; this file only says "look now".

use crate::store::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

pub struct Signal {
    /// The file as opened, and where.
    file: Option<(File, PathBuf)>,
    /// Set once the file at that path is another (deleted and made again by the CLI, say):
    /// from then on the signal is read from `reopened`, behind a lock no call takes before.
    moved: AtomicBool,
    reopened: Mutex<Option<File>>,
    /// Whether the path could not be opened at the last look: said once, not every second.
    unopenable: AtomicBool,
    /// This process's own changes, for in-memory databases and as a fallback.
    local: AtomicU64,
}

impl Signal {
    pub fn in_process() -> Self {
        Self {
            file: None,
            moved: AtomicBool::new(false),
            reopened: Mutex::new(None),
            unopenable: AtomicBool::new(false),
            local: AtomicU64::new(0),
        }
    }

    pub fn beside(db_path: &Path) -> Result<Self> {
        let mut path = db_path.as_os_str().to_owned();
        path.push("-signal");
        let path = PathBuf::from(path);
        let file = open(&path)
            .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
        Ok(Self {
            file: Some((file, path)),
            moved: AtomicBool::new(false),
            reopened: Mutex::new(None),
            unopenable: AtomicBool::new(false),
            local: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the signal's file as it is now, if there is one.
    fn with_file<T>(&self, f: impl FnOnce(&File) -> T) -> Option<T> {
        let (file, _) = self.file.as_ref()?;
        if !self.moved.load(Ordering::Acquire) {
            return Some(f(file));
        }
        let reopened = self.reopened.lock().unwrap_or_else(PoisonError::into_inner);
        reopened.as_ref().map(f)
    }

    /// Moves the signal. Every process that changes credentials calls this after its commit.
    pub fn raise(&self) {
        let local = self.local.fetch_add(1, Ordering::SeqCst) + 1;
        // A random value cannot repeat one a reader saw earlier, whoever writes it.
        let value: u64 = rand::random::<u64>() | 1;
        if let Some(Err(error)) = self.with_file(|file| file.write_all_at(&value.to_le_bytes(), 0))
        {
            tracing::warn!(%error, local, "could not raise the change signal; servers notice within a second");
        }
    }

    pub fn read(&self) -> u64 {
        let local = self.local.load(Ordering::SeqCst);
        let mut bytes = [0u8; 8];
        match self.with_file(|file| file.read_exact_at(&mut bytes, 0)) {
            Some(Ok(())) => u64::from_le_bytes(bytes) ^ local.rotate_left(32),
            _ => local,
        }
    }

    /// Follows the file's path when it holds another file than the one read (deleted, and
    /// made again by the next command that changed credentials, or by this call): a signal
    /// read from a deleted file would never move again. Called with every sync of the cache,
    /// at least once a second.
    pub fn follow(&self) {
        let Some((_, path)) = &self.file else {
            return;
        };
        let read = self.with_file(|file| file.metadata().map(|m| (m.dev(), m.ino())));
        let there = std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
        if let (Some(Ok(read)), Ok(there)) = (read, &there)
            && read == *there
        {
            return;
        }
        match open(path) {
            Ok(file) => {
                *self.reopened.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
                self.moved.store(true, Ordering::Release);
                self.unopenable.store(false, Ordering::Relaxed);
                tracing::warn!(
                    path = %path.display(),
                    "the change-signal file was deleted or replaced; reading the one there now"
                );
            }
            Err(error) if !self.unopenable.swap(true, Ordering::Relaxed) => tracing::warn!(
                %error,
                path = %path.display(),
                "the change-signal file at its path cannot be opened; command-line changes \
                 hold within a second until it can"
            ),
            Err(_) => {}
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}
