//! Walking part of the context the way BuildKit sends it: sorted, filtered, symlinks not followed.
//!
//! Entries come out depth first, names sorted bytewise within each directory, with `lstat`
//! metadata. An entry hidden by a filter is not reported, but a hidden directory is reported just
//! before the first entry below it that is kept, so a kept file always arrives after all its
//! parents. Excluded directories that no exception can reach are never listed; a permission error
//! listing a directory that is itself hidden is ignored, since nothing in it could be sent anyway.
//! Files are never opened.

use std::collections::VecDeque;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use std::sync::mpsc::Receiver;

use super::error::ContextError;
use super::filter::{Decision, FilterState, WalkFilter};
use super::prefetch::Item;

/// One entry found by a walk.
#[derive(Debug, Clone)]
pub struct ContextEntry {
    /// Slash-separated path relative to the context root, `""` for the root itself.
    pub rel: String,
    /// Absolute host path.
    pub path: PathBuf,
    /// `lstat` metadata: a symbolic link is described, not its target.
    pub metadata: Metadata,
}

/// An iterator over the entries of a walk; see the module documentation for the order.
#[derive(Debug)]
pub struct Walk<'a> {
    root: PathBuf,
    filters: Vec<&'a WalkFilter>,
    pending: VecDeque<Result<ContextEntry, ContextError>>,
    stack: Vec<Frame>,
    /// Entries walked ahead on another thread, handed over in walk order, until the last.
    prefetched: Option<Receiver<Item>>,
    from_prefetch: bool,
}

/// A directory being listed.
#[derive(Debug)]
struct Frame {
    rel: String,
    /// The directory's own entry while it is hidden and not yet reported.
    unreported: Option<ContextEntry>,
    states: Vec<FilterState>,
    children: std::vec::IntoIter<Child>,
}

/// A directory's entry: its name, and the entry itself, which keeps the directory open so its
/// `lstat` is taken relative to it when the entry is visited (no lookup of the whole path).
type Child = (String, fs::DirEntry);

/// Walks `rel` (a file or directory under `root`, `""` for the root) through the stacked
/// `filters`. `rel` itself is the first entry when it is kept; `rel`'s parent directories are
/// evaluated for the filters' sake but not reported, and must not be symbolic links.
pub fn walk_filtered<'a>(
    root: &Path,
    rel: &str,
    filters: impl IntoIterator<Item = &'a WalkFilter>,
) -> Result<Walk<'a>, ContextError> {
    let mut walk = Walk {
        root: root.to_path_buf(),
        filters: filters.into_iter().collect(),
        pending: VecDeque::new(),
        stack: Vec::new(),
        prefetched: None,
        from_prefetch: false,
    };
    let components: Vec<&str> = rel
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if components.contains(&"..") {
        return Err(ContextError::OutsideContext {
            source_path: rel.to_owned(),
        });
    }
    let Some((_, parents)) = components.split_last() else {
        let metadata = lstat(root)?;
        let children = walk.children(root)?;
        walk.pending.push_back(Ok(ContextEntry {
            rel: String::new(),
            path: root.to_path_buf(),
            metadata,
        }));
        walk.stack.push(Frame {
            rel: String::new(),
            unreported: None,
            states: vec![FilterState::default(); walk.filters.len()],
            children,
        });
        return Ok(walk);
    };
    let mut states = vec![FilterState::default(); walk.filters.len()];
    for depth in 1..=parents.len() {
        let parent_rel = parents[..depth].join("/");
        let metadata = lstat(&root.join(&parent_rel))?;
        if metadata.file_type().is_symlink() {
            return Err(ContextError::SymlinkInPath {
                rel: rel.to_owned(),
            });
        }
        match walk.decide(&parent_rel, true, &states)? {
            Some(next) => states = next,
            None => return Ok(walk),
        }
    }
    let rel = components.join("/");
    let path = root.join(&rel);
    let metadata = lstat(&path)?;
    walk.visit(rel, path, metadata, &states, true)?;
    Ok(walk)
}

fn lstat(path: &Path) -> Result<Metadata, ContextError> {
    fs::symlink_metadata(path).map_err(|error| ContextError::io("stat", path, error))
}

impl Walk<'_> {
    /// A walk that reads what a walk on another thread found (see `prefetch`).
    pub(super) fn prefetched(root: &Path, entries: Receiver<Item>) -> Walk<'static> {
        Walk {
            root: root.to_path_buf(),
            filters: Vec::new(),
            pending: VecDeque::new(),
            stack: Vec::new(),
            prefetched: Some(entries),
            from_prefetch: true,
        }
    }

    /// Whether the entries come from a walk made ahead of time.
    pub fn is_prefetched(&self) -> bool {
        self.from_prefetch
    }

    /// Runs every layer; `None` when one of them prunes the entry.
    fn decide(
        &self,
        rel: &str,
        is_dir: bool,
        parent: &[FilterState],
    ) -> Result<Option<Vec<FilterState>>, ContextError> {
        self.decide_all(rel, is_dir, parent)
            .map(|outcome| outcome.map(|(_, states)| states))
    }

    fn decide_all(
        &self,
        rel: &str,
        is_dir: bool,
        parent: &[FilterState],
    ) -> Result<Option<(bool, Vec<FilterState>)>, ContextError> {
        let mut hidden = false;
        let mut states = Vec::with_capacity(self.filters.len());
        for (filter, parent_state) in self.filters.iter().zip(parent) {
            let (decision, state) = filter
                .decide(rel, is_dir, parent_state)
                .map_err(ContextError::Filter)?;
            match decision {
                Decision::Prune => return Ok(None),
                Decision::Hide => hidden = true,
                Decision::Keep => {}
            }
            states.push(state);
        }
        Ok(Some((hidden, states)))
    }

    /// Handles one entry: reports it (after any unreported parents) unless hidden, and queues a
    /// directory for listing.
    fn visit(
        &mut self,
        rel: String,
        path: PathBuf,
        metadata: Metadata,
        parent: &[FilterState],
        is_start: bool,
    ) -> Result<(), ContextError> {
        let is_dir = metadata.is_dir();
        let Some((hidden, states)) = self.decide_all(&rel, is_dir, parent)? else {
            return Ok(());
        };
        let entry = ContextEntry {
            rel: rel.clone(),
            path: path.clone(),
            metadata,
        };
        let unreported = if hidden {
            Some(entry)
        } else {
            self.report_parents();
            self.pending.push_back(Ok(entry));
            None
        };
        if !is_dir {
            return Ok(());
        }
        let children = match self.children(&path) {
            Ok(children) => children,
            Err(ContextError::Io { error, .. })
                if hidden && error.kind() == io::ErrorKind::PermissionDenied =>
            {
                Vec::new().into_iter()
            }
            Err(error) if is_start => return Err(error),
            Err(error) => {
                self.pending.push_back(Err(error));
                Vec::new().into_iter()
            }
        };
        self.stack.push(Frame {
            rel,
            unreported,
            states,
            children,
        });
        Ok(())
    }

    fn report_parents(&mut self) {
        for frame in &mut self.stack {
            if let Some(entry) = frame.unreported.take() {
                self.pending.push_back(Ok(entry));
            }
        }
    }

    /// Lists a directory's entries in bytewise order of their names.
    fn children(&self, dir: &Path) -> Result<std::vec::IntoIter<Child>, ContextError> {
        let read_error = |error| ContextError::io("read directory", dir, error);
        let mut children = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            match entry.file_name().into_string() {
                Ok(name) => children.push((name, entry)),
                Err(name) => {
                    return Err(ContextError::NonUtf8Name {
                        path: dir.join(name),
                    });
                }
            }
        }
        children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(children.into_iter())
    }

    /// Visits the next child of the innermost directory, or leaves that directory.
    fn step(&mut self) -> Option<()> {
        let frame = self.stack.last_mut()?;
        let Some((name, entry)) = frame.children.next() else {
            self.stack.pop();
            return Some(());
        };
        let rel = join_rel(&frame.rel, &name);
        let states = frame.states.clone();
        let path = self.root.join(&rel);
        match entry.metadata() {
            Ok(metadata) => {
                if let Err(error) = self.visit(rel, path, metadata, &states, false) {
                    self.pending.push_back(Err(error));
                }
            }
            // Removed while walking: as if it had never been there.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => self
                .pending
                .push_back(Err(ContextError::io("stat", path, error))),
        }
        Some(())
    }
}

/// `parent/name`, or `name` under the root (`""`); built directly, as it is done once per
/// file of every walk.
pub(crate) fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        return name.to_string();
    }
    let mut rel = String::with_capacity(parent.len() + 1 + name.len());
    rel.push_str(parent);
    rel.push('/');
    rel.push_str(name);
    rel
}

impl Iterator for Walk<'_> {
    type Item = Result<ContextEntry, ContextError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if let Some(entries) = &self.prefetched {
                let received = entries.recv();
                if let Ok(Item::Entries(batch)) = received {
                    self.pending.extend(batch);
                    continue;
                }
                // The last batch is in: the walk's own (empty) state ends it from here on.
                self.prefetched = None;
                return match received {
                    Ok(_) => None,
                    Err(_) => Some(Err(ContextError::io(
                        "walk",
                        &self.root,
                        io::Error::other("the walk ahead of the build stopped early"),
                    ))),
                };
            }
            self.step()?;
        }
    }
}
