//! Writing a growing blob's data back to disk while it grows.
//!
//! A blob is synced before it is renamed into place, so that a crash never leaves a name whose
//! bytes are missing. Left to the end, that sync writes the whole blob at once: for a 50 MB
//! layer on a journaled file system, a sixth of a second during which the build waits. Asking
//! for the data to be written back as the blob grows, on a thread of its own, leaves the final
//! sync only the last stretch.
//!
//! The thread syncs through a descriptor of its own (the file opened again), not a copy of the
//! writer's: a write-back error is then reported to the writer's final sync as well, instead of
//! being taken by the thread.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// A sync is asked for each time this much more has been written.
const EVERY: u64 = 8 * 1024 * 1024;

/// Syncs a file in the background as it grows past each [`EVERY`] bytes.
#[derive(Debug, Default)]
pub(super) struct WriteBehind {
    /// Bytes written when a sync was last asked for.
    asked_at: u64,
    /// The syncing thread, started by the first stretch; `None` also when it cannot start
    /// (then the final sync does all the work, as without it).
    worker: Option<(SyncSender<()>, JoinHandle<()>)>,
    unavailable: bool,
}

impl WriteBehind {
    /// The file at `path` has `written` bytes now.
    pub(super) fn wrote(&mut self, path: &Path, written: u64) {
        if self.unavailable || written < self.asked_at + EVERY {
            return;
        }
        self.asked_at = written;
        if self.worker.is_none() {
            self.worker = start(path);
            self.unavailable = self.worker.is_none();
        }
        if let Some((ask, _)) = &self.worker {
            // Full: a sync is asked for already, and will cover these bytes too.
            let _ = ask.try_send(());
        }
    }

    /// Waits for the sync under way, if any, so that the final one starts after it.
    pub(super) fn finish(&mut self) {
        if let Some((ask, thread)) = self.worker.take() {
            drop(ask);
            let _ = thread.join();
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        self.finish();
    }
}

fn start(path: &Path) -> Option<(SyncSender<()>, JoinHandle<()>)> {
    let file = File::open(path).ok()?;
    let (ask, asked) = sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("kiln-write-behind".into())
        .spawn(move || {
            while asked.recv().is_ok() {
                // Only a head start: the final sync reports any error.
                let _ = file.sync_data();
            }
        })
        .ok()?;
    Some((ask, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_starts_once_a_stretch_is_written_and_finish_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![7u8; 1024]).unwrap();
        let mut behind = WriteBehind::default();
        behind.wrote(&path, EVERY - 1);
        assert!(behind.worker.is_none(), "a small blob needs no thread");
        behind.wrote(&path, EVERY);
        assert!(behind.worker.is_some());
        assert_eq!(behind.asked_at, EVERY);
        behind.wrote(&path, EVERY + 1);
        assert_eq!(behind.asked_at, EVERY, "asked again before another stretch");
        behind.finish();
        assert!(behind.worker.is_none());

        // A file that cannot be opened again is left to the final sync.
        let mut missing = WriteBehind::default();
        missing.wrote(&dir.path().join("gone"), EVERY);
        assert!(missing.worker.is_none() && missing.unavailable);
        missing.wrote(&path, 2 * EVERY);
        assert!(missing.worker.is_none());
    }
}
