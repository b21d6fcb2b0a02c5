//! Walking context directories ahead of need.
//!
//! A warm build spends most of its time on two things that do not depend on each other: asking
//! the registry about its base images, and taking the `lstat` of every file its `COPY` steps
//! read, for their cache keys. [`BuildContext::prefetch`] starts the second while the first
//! runs: the directories the Dockerfile names as sources are walked on a thread of their own, in
//! Dockerfile order, and each walk waits, bounded, until a key asks for it
//! ([`BuildContext::walk_prefetched`]).
//!
//! A prefetched walk shows the context as it was when the build began, like the context docker
//! sends before the first step. Each is handed out once; copying always walks afresh.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::BuildContext;
use super::error::ContextError;
use super::walk::ContextEntry;

/// Entries handed over at once: one hand-over costs about as much as a few `lstat`s.
const BATCH: usize = 256;

/// Batches a walk holds before it waits for its reader: 16,384 entries, a few MB at most, so
/// that reading a huge context ahead costs no more memory than reading it when asked.
pub(super) const BOUND: usize = 64;

/// What a prefetched walk passes to its reader.
#[derive(Debug)]
pub(super) enum Item {
    /// The next entries, in walk order.
    Entries(Vec<Result<ContextEntry, ContextError>>),
    /// The walk is complete: a channel that closes without it was cut short.
    End,
}

/// The walks under way or waiting on the thread.
#[derive(Debug)]
pub(super) struct Prefetch {
    /// Walks not handed out yet, by start path, in the order the thread takes them.
    queued: Mutex<VecDeque<(String, Receiver<Item>)>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Walks each of `starts` (normalized start paths, as `BuildContext::walk_start` gives) in
    /// `context`, one after another, on a new thread; each holds at most `bound` batches.
    pub(super) fn start(context: BuildContext, starts: Vec<String>, bound: usize) -> Prefetch {
        let mut queued = VecDeque::with_capacity(starts.len());
        let mut walks = Vec::with_capacity(starts.len());
        for start in starts {
            let (tx, rx) = sync_channel(bound);
            queued.push_back((start.clone(), rx));
            walks.push((start, tx));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kiln-context".into())
                .spawn(move || walk_all(&context, walks, &stop))
                .ok()
        };
        if thread.is_none() {
            // No thread, no walks: every key walks for itself.
            queued.clear();
        }
        Prefetch {
            queued: Mutex::new(queued),
            stop,
            thread,
        }
    }

    /// The walk of `start`, if it was prefetched and not handed out yet. Walks queued before it
    /// are given up, since the thread may be waiting for a reader of one of them and this walk
    /// must not wait behind it.
    pub(super) fn take(&self, start: &str) -> Option<Receiver<Item>> {
        let mut queued = self.queued.lock().ok()?;
        let position = queued.iter().position(|(s, _)| s == start)?;
        queued.drain(..position);
        queued.pop_front().map(|(_, rx)| rx)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the readers wakes a thread waiting to hand them entries.
        if let Ok(mut queued) = self.queued.lock() {
            queued.clear();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn walk_all(context: &BuildContext, walks: Vec<(String, SyncSender<Item>)>, stop: &AtomicBool) {
    'walks: for (start, tx) in walks {
        let entries = match context.walk_from(&start, None) {
            Ok(walk) => walk,
            Err(e) => {
                let _ = tx.send(Item::Entries(vec![Err(e)]));
                let _ = tx.send(Item::End);
                continue;
            }
        };
        let mut batch = Vec::with_capacity(BATCH);
        for entry in entries {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            batch.push(entry);
            if batch.len() < BATCH {
                continue;
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(Item::Entries(full)).is_err() {
                // Given up by its reader.
                continue 'walks;
            }
        }
        if !batch.is_empty() && tx.send(Item::Entries(batch)).is_err() {
            continue;
        }
        let _ = tx.send(Item::End);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::context::Walk;

    fn rels(walk: Walk<'_>) -> Vec<String> {
        walk.map(|e| e.map(|e| e.rel).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A context with `big/` (three batches of files) and `small/` (two files).
    fn context() -> (tempfile::TempDir, BuildContext) {
        let dir = tempfile::tempdir().unwrap();
        for (sub, n) in [("big", 3 * BATCH), ("small", 2)] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for i in 0..n {
                std::fs::write(dir.path().join(sub).join(format!("{i:04}")), b"x").unwrap();
            }
        }
        let context = BuildContext::open(dir.path(), None).unwrap();
        (dir, context)
    }

    fn detached(context: &BuildContext) -> BuildContext {
        BuildContext::open(context.root(), None).unwrap()
    }

    /// Runs `f` on a thread and fails if it has not finished within ten seconds.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("still waiting after ten seconds")
    }

    #[test]
    fn a_later_walk_does_not_wait_behind_one_nobody_reads() {
        let (_dir, context) = context();
        let expected = rels(context.walk("small").unwrap());
        // One batch of room: the walk of big/ fills it and waits for a reader that never comes.
        let prefetch = Prefetch::start(detached(&context), vec!["big".into(), "small".into()], 1);
        let root = context.root().to_path_buf();
        let (walked, prefetch) = within_seconds(move || {
            let entries = prefetch.take("small").unwrap();
            (rels(Walk::prefetched(&root, entries)), prefetch)
        });
        assert_eq!(walked, expected);
        assert_eq!(expected.len(), 3);
        // Given up when small/ was taken.
        assert!(prefetch.take("big").is_none());
    }

    #[test]
    fn a_walk_read_in_full_is_the_whole_walk_and_dropping_a_waiting_one_ends_its_thread() {
        let (_dir, context) = context();
        let expected = rels(context.walk("big").unwrap());
        let prefetch = Prefetch::start(detached(&context), vec!["big".into()], 1);
        let root = context.root().to_path_buf();
        let (walked, prefetch) = within_seconds(move || {
            let entries = prefetch.take("big").unwrap();
            (rels(Walk::prefetched(&root, entries)), prefetch)
        });
        assert_eq!(walked, expected);
        assert_eq!(walked.len(), 3 * BATCH + 1);
        drop(prefetch);

        let waiting = Prefetch::start(detached(&context), vec!["big".into()], 1);
        within_seconds(move || drop(waiting));
    }
}
