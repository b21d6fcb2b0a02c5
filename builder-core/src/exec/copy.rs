//! COPY and ADD: which files, where they land, and with what owner and mode, as Docker does it.
//!
//! The result is the step's layer as a list of entries; nothing is copied here. Docker's rules:
//! a directory source copies its contents, not itself; several sources (or a wildcard) need a
//! directory destination; a destination ending in `/`, or one that is an existing directory,
//! receives files by their base name; missing parent directories are created; files from the
//! context belong to 0:0 unless `--chown`, files from another stage keep their owners; `ADD` of a
//! local tar archive extracts it.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use super::fs::{FsTree, join, split_parent};
use super::users::{Owner, resolve_owner};
use super::{ExecError, StepEnv};
use crate::context::{
    BuildContext, ContextError, PatternMatcher, contains_wildcards, filepath_match,
};
use crate::oci::{Content, Entry, EntryKind};
use crate::plan::{CopyFrom, CopyOp, CopySource, clean_path};

/// Where a COPY destination lands in the stage's tree.
#[derive(Debug, Clone)]
enum Dest {
    /// Sources go inside this directory (relative path, `""` for the root).
    Dir(String),
    /// The single source becomes this file.
    File(String),
}

/// Computes the layer of a COPY/ADD step against `target`, the stage's tree before the step.
pub fn copy(op: &CopyOp, target: &FsTree, env: &StepEnv<'_>) -> Result<Vec<Entry>, ExecError> {
    let owner = match &op.chown {
        Some(spec) => Some(resolve_owner(spec, target).map_err(ExecError::User)?),
        None => None,
    };
    let keyword = if op.add { "ADD" } else { "COPY" };
    let several = op.sources.len() > 1;
    if several && !op.dest.ends_with('/') {
        return Err(ExecError::DestinationNotDirectory {
            keyword,
            dest: op.dest.clone(),
        });
    }
    let excludes = if op.excludes.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&op.excludes).map_err(|e| ExecError::Invalid(e.to_string()))?)
    };
    let dest = resolve_dest(&op.dest, several, target)?;
    let mut out = Output {
        entries: BTreeMap::new(),
        owner,
        chmod: op.chmod,
        excludes,
    };
    for source in &op.sources {
        match source {
            CopySource::Heredoc { name, content } => {
                let path = match &dest {
                    Dest::Dir(d) => join(d, name),
                    Dest::File(f) => f.clone(),
                };
                let o = out.owner.unwrap_or(Owner::ROOT);
                out.push(Entry {
                    path,
                    kind: EntryKind::File(Content::Bytes(Arc::from(content.as_bytes()))),
                    mode: out.chmod.unwrap_or(0o644),
                    uid: o.uid,
                    gid: o.gid,
                    mtime: env.now,
                    xattrs: BTreeMap::new(),
                });
            }
            CopySource::Url(url) => {
                return Err(ExecError::Unsupported(format!(
                    "ADD from a URL (`{url}`) is not supported yet; download it in an earlier stage or add it to the context"
                )));
            }
            CopySource::Path(pattern) => match &op.from {
                CopyFrom::Context => copy_from_context(op, pattern, &dest, target, &mut out, env)?,
                CopyFrom::Stage(i) => {
                    let tree = env.stage_tree(*i).ok_or_else(|| {
                        ExecError::Invalid(format!("stage {i} was not built before it was needed"))
                    })?;
                    copy_from_tree(pattern, tree, op.parents, &dest, target, &mut out)?
                }
                CopyFrom::Image(r) => {
                    let tree = env.images.get(&r.to_string()).ok_or_else(|| {
                        ExecError::Invalid(format!(
                            "image `{}` was not read before it was needed",
                            r.familiar()
                        ))
                    })?;
                    copy_from_tree(pattern, tree, op.parents, &dest, target, &mut out)?
                }
            },
        }
    }
    Ok(out.finish(target, env.now))
}

/// The entries of one step, keyed by path so a later source overrides an earlier one.
struct Output {
    entries: BTreeMap<String, Entry>,
    owner: Option<Owner>,
    chmod: Option<u32>,
    excludes: Option<PatternMatcher>,
}

impl Output {
    fn push(&mut self, e: Entry) {
        self.entries.insert(e.path.clone(), e);
    }

    fn excluded(&self, rel: &str) -> bool {
        self.excludes
            .as_ref()
            .is_some_and(|m| m.matches_or_parent_matches(rel).unwrap_or(false))
    }

    /// Adds the missing parent directories (existing ones with the tree's metadata, new ones
    /// 0755 and owned by `--chown`) and returns the sorted layer.
    fn finish(mut self, target: &FsTree, now: i64) -> Vec<Entry> {
        let owner = self.owner.unwrap_or(Owner::ROOT);
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        for path in paths {
            let mut parent = split_parent(&path).0;
            while !parent.is_empty() && !self.entries.contains_key(parent) {
                let entry = match target.get(parent) {
                    Some(e) if matches!(e.kind, EntryKind::Dir) => e.clone(),
                    _ => Entry::dir(parent, 0o755, owner.uid, owner.gid, now),
                };
                self.entries.insert(parent.to_string(), entry);
                parent = split_parent(parent).0;
            }
        }
        self.entries.into_values().collect()
    }
}

/// Decides whether the destination is a directory (trailing `/`, several sources, or an existing
/// directory in the stage) and resolves it through the stage's symlinks.
fn resolve_dest(dest: &str, several: bool, target: &FsTree) -> Result<Dest, ExecError> {
    let trimmed = dest.trim_end_matches('/');
    let resolved = target
        .resolve(trimmed, true)
        .map_err(|e| ExecError::Invalid(format!("cannot copy to `{dest}`: {e}")))?;
    if dest.ends_with('/') || several || target.is_dir(&resolved) {
        Ok(Dest::Dir(resolved))
    } else {
        let unfollowed = target
            .resolve(trimmed, false)
            .map_err(|e| ExecError::Invalid(format!("cannot copy to `{dest}`: {e}")))?;
        Ok(Dest::File(unfollowed))
    }
}

fn has_wildcard(s: &str) -> bool {
    contains_wildcards(s)
}

/// A COPY source path as BuildKit reads it: relative to the root of the context or stage, `..`
/// never climbing above that root, a trailing `/` meaningless. With `--parents`, the part before
/// a `/./` in the source is the pivot: only the directories after it are kept.
struct SourcePath {
    /// The whole path, cleaned, without a leading `/` (`""` for the root).
    full: String,
    /// The pivot, cleaned likewise; `""` when there is none.
    pivot: String,
}

impl SourcePath {
    fn new(raw: &str, parents: bool) -> SourcePath {
        let (pivot, full) = match raw.split_once("/./") {
            Some((pivot, rest)) if parents => {
                (clean_rel(pivot), clean_rel(&format!("{pivot}/{rest}")))
            }
            _ => (String::new(), clean_rel(raw)),
        };
        SourcePath { full, pivot }
    }

    /// The part of a matched path that `--parents` keeps under the destination.
    fn kept<'a>(&self, matched: &'a str) -> &'a str {
        if self.pivot.is_empty() {
            return matched;
        }
        matched
            .strip_prefix(self.pivot.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(matched)
    }
}

/// Whether `path`, read from the root, climbs above it (`../x`, `a/../../x`).
fn climbs_out(path: &str) -> bool {
    let mut depth: usize = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// Lexically cleans `path` as a path below a root: `.` and empty components dropped, `..`
/// removing the previous component and stopping at the root.
fn clean_rel(path: &str) -> String {
    clean_path(path).trim_start_matches('/').to_string()
}

fn base_name(rel: &str) -> &str {
    split_parent(rel.trim_end_matches('/')).1
}

fn copy_from_context(
    op: &CopyOp,
    pattern: &str,
    dest: &Dest,
    target: &FsTree,
    out: &mut Output,
    env: &StepEnv<'_>,
) -> Result<(), ExecError> {
    let ctx = env.context;
    let (source, matches) = context_matches(pattern, op.parents, ctx)?;
    if matches.is_empty() {
        return Ok(());
    }
    let dest = match (dest, matches.len() > 1 || has_wildcard(pattern)) {
        (Dest::File(f), true) if matches.len() > 1 => Dest::Dir(f.clone()),
        (d, _) => d.clone(),
    };
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    for m in matches {
        if !m.rel.is_empty() && out.excluded(&m.rel) {
            continue;
        }
        let path = m.path.clone();
        let meta = symlink_meta(&path)?;
        let top = if op.parents {
            match &dest {
                Dest::Dir(d) => join(d, source.kept(&m.named)),
                Dest::File(f) => f.clone(),
            }
        } else {
            match &dest {
                Dest::Dir(d) if meta.is_dir() => d.clone(),
                Dest::Dir(d) => join(d, base_name(&m.named)),
                Dest::File(f) => f.clone(),
            }
        };
        if meta.is_dir() {
            if !top.is_empty() && !target.is_dir(&top) {
                out.push(dir_entry(&top, &meta, out.owner, out.chmod));
            }
            let walk = ctx.walk(&m.rel).map_err(ExecError::Source)?;
            for item in walk {
                let item = item.map_err(ExecError::Source)?;
                let inner = item
                    .rel
                    .strip_prefix(&m.rel)
                    .unwrap_or(&item.rel)
                    .trim_start_matches('/');
                if inner.is_empty() || out.excluded(inner) {
                    continue;
                }
                let dest_path = join(&top, inner);
                let entry = context_entry(&dest_path, &item.path, &item.metadata, out, &mut links)?;
                out.push(entry);
            }
        } else if op.add && env.archives.is_archive(&path).map_err(ExecError::Archive)? {
            let dir = match &dest {
                Dest::Dir(d) => d.clone(),
                Dest::File(f) => f.clone(),
            };
            let mut entries = env
                .archives
                .extract(&path, &dir, env.scratch)
                .map_err(ExecError::Archive)?;
            for e in &mut entries {
                if let Some(o) = out.owner {
                    e.uid = o.uid;
                    e.gid = o.gid;
                }
            }
            for e in entries {
                out.push(e);
            }
        } else {
            let entry = context_entry(&top, &path, &meta, out, &mut links)?;
            out.push(entry);
        }
    }
    Ok(())
}

/// The context paths a COPY source names. A pattern that climbs out of the context is refused
/// (BuildKit silently clamps `../x` to `x`; kiln says so instead of copying something else); a
/// wildcard that matches nothing matches nothing, as BuildKit's `AllowEmptyWildcard` copy does.
fn context_matches(
    pattern: &str,
    parents: bool,
    ctx: &BuildContext,
) -> Result<(SourcePath, Vec<crate::context::ContextPath>), ExecError> {
    if climbs_out(pattern) {
        return Err(ExecError::Source(ContextError::OutsideContext {
            source_path: pattern.to_string(),
        }));
    }
    let source = SourcePath::new(pattern, parents);
    let matches = match ctx.resolve_source(&source.full) {
        Ok(m) => m,
        Err(ContextError::NotFound { .. }) if has_wildcard(&source.full) => Vec::new(),
        Err(e) => return Err(ExecError::Source(e)),
    };
    Ok((source, matches))
}

fn symlink_meta(path: &Path) -> Result<std::fs::Metadata, ExecError> {
    std::fs::symlink_metadata(path).map_err(|source| ExecError::Io {
        action: "read metadata of",
        path: path.to_path_buf(),
        source,
    })
}

fn dir_entry(
    path: &str,
    meta: &std::fs::Metadata,
    owner: Option<Owner>,
    chmod: Option<u32>,
) -> Entry {
    let o = owner.unwrap_or(Owner::ROOT);
    Entry::dir(
        path,
        chmod.unwrap_or(meta.mode() & 0o7777),
        o.uid,
        o.gid,
        meta.mtime(),
    )
}

/// One context file as it will be in the image: 0:0 (or `--chown`), its mode (or `--chmod`),
/// its mtime; a second path to an inode already copied becomes a hard link.
fn context_entry(
    dest: &str,
    host: &Path,
    meta: &std::fs::Metadata,
    out: &Output,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<Entry, ExecError> {
    let o = out.owner.unwrap_or(Owner::ROOT);
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        let target = std::fs::read_link(host).map_err(|source| ExecError::Io {
            action: "read link",
            path: host.to_path_buf(),
            source,
        })?;
        EntryKind::Symlink(target.to_string_lossy().into_owned())
    } else if ft.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                EntryKind::Hardlink(first.clone())
            } else {
                links.insert(key, dest.to_string());
                EntryKind::File(Content::Path(host.to_path_buf()))
            }
        } else {
            EntryKind::File(Content::Path(host.to_path_buf()))
        }
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else if let Some(device) = EntryKind::device(meta) {
        device
    } else {
        return Err(ExecError::Invalid(format!(
            "`{}` is a socket or another file type that cannot be copied into an image",
            host.display()
        )));
    };
    let mode = match (&kind, out.chmod) {
        (EntryKind::Symlink(_), _) => 0o777,
        (_, Some(m)) => m,
        (_, None) => meta.mode() & 0o7777,
    };
    Ok(Entry {
        path: dest.to_string(),
        kind,
        mode,
        uid: o.uid,
        gid: o.gid,
        mtime: meta.mtime(),
        xattrs: BTreeMap::new(),
    })
}

/// `COPY --from=<stage>`: sources are paths (maybe with wildcards) in that stage's tree.
fn copy_from_tree(
    pattern: &str,
    tree: &FsTree,
    parents: bool,
    dest: &Dest,
    target: &FsTree,
    out: &mut Output,
) -> Result<(), ExecError> {
    let source = SourcePath::new(pattern, parents);
    let matches = glob_tree(tree, &source.full)?;
    if matches.is_empty() {
        if has_wildcard(&source.full) {
            return Ok(());
        }
        return Err(ExecError::NotInStage {
            path: pattern.to_string(),
        });
    }
    let dest = match dest {
        Dest::File(f) if matches.len() > 1 => Dest::Dir(f.clone()),
        d => d.clone(),
    };
    for rel in matches {
        let resolved = tree
            .resolve(&rel, true)
            .map_err(|e| ExecError::Invalid(format!("cannot copy `/{rel}`: {e}")))?;
        // The root is a directory even though the tree holds no entry for it.
        let root = Entry::dir("", 0o755, 0, 0, 0);
        let entry = match tree.get(&resolved) {
            Some(e) => e,
            None if resolved.is_empty() => &root,
            None => {
                return Err(ExecError::NotInStage {
                    path: format!("/{rel}"),
                });
            }
        };
        let top = if parents {
            match &dest {
                Dest::Dir(d) => join(d, source.kept(&rel)),
                Dest::File(f) => f.clone(),
            }
        } else {
            match (&dest, &entry.kind) {
                (Dest::Dir(d), EntryKind::Dir) => d.clone(),
                (Dest::Dir(d), _) => join(d, base_name(&rel)),
                (Dest::File(f), _) => f.clone(),
            }
        };
        if matches!(entry.kind, EntryKind::Dir) {
            if !top.is_empty() && !target.is_dir(&top) {
                out.push(restamp(entry, &top, out.owner, out.chmod));
            }
            for (path, e) in tree.descendants(&resolved) {
                let inner = &path[resolved.len()..].trim_start_matches('/');
                if out.excluded(inner) {
                    continue;
                }
                out.push(restamp(e, &join(&top, inner), out.owner, out.chmod));
            }
        } else {
            out.push(restamp(entry, &top, out.owner, out.chmod));
        }
    }
    Ok(())
}

/// A stage's entry under a new path; it keeps its owner unless `--chown`, its mode unless
/// `--chmod`. Hard links are copied as files, since their targets may not be copied along.
fn restamp(e: &Entry, path: &str, owner: Option<Owner>, chmod: Option<u32>) -> Entry {
    let mut n = e.clone();
    n.path = path.to_string();
    if let EntryKind::Hardlink(_) = &n.kind {
        // FsTree::apply resolves every hard link to its target's content; one left here means
        // the target was missing, and a dangling link must not reach a layer.
        n.kind = EntryKind::File(crate::oci::Content::Bytes(std::sync::Arc::from(&b""[..])));
    }
    if let Some(o) = owner {
        n.uid = o.uid;
        n.gid = o.gid;
    }
    if let Some(m) = chmod
        && !matches!(n.kind, EntryKind::Symlink(_))
    {
        n.mode = m;
    }
    n
}

/// Expands a source pattern against a tree, component by component (Go `filepath.Match` rules).
fn glob_tree(tree: &FsTree, pattern: &str) -> Result<Vec<String>, ExecError> {
    let parts: Vec<&str> = pattern
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut current = vec![String::new()];
    for part in parts {
        let mut next = Vec::new();
        for base in &current {
            let dir = tree.resolve(base, true).unwrap_or_else(|_| base.clone());
            if part == ".." {
                next.push(split_parent(base).0.to_string());
                continue;
            }
            if !has_wildcard(part) {
                let candidate = join(&dir, part);
                if tree.get(&candidate).is_some() {
                    next.push(candidate);
                }
                continue;
            }
            for (path, _) in tree.descendants(&dir) {
                let rest = path[dir.len()..].trim_start_matches('/');
                if rest.contains('/') {
                    continue;
                }
                let hit = filepath_match(part, rest)
                    .map_err(|e| ExecError::Invalid(format!("bad pattern `{pattern}`: {e}")))?;
                if hit {
                    next.push(path.to_string());
                }
            }
        }
        current = next;
    }
    if current.len() == 1 && current[0].is_empty() {
        // `/` or `.` itself.
        return Ok(current);
    }
    Ok(current.into_iter().filter(|p| !p.is_empty()).collect())
}

/// A context file a COPY/ADD reads, named as the source names it (`src/app.py` for
/// `COPY src/ /app/`), with its `lstat`.
#[derive(Debug, Clone)]
pub struct ContextInput {
    /// The path as named from the context root: the source's name joined with the path below it.
    pub path: String,
    /// Where it is on the host.
    pub host: std::path::PathBuf,
    /// Its `lstat`.
    pub metadata: std::fs::Metadata,
}

/// Which walks [`context_inputs`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextWalks {
    /// Those [`BuildContext::prefetch`] made, where there is one.
    Prefetched,
    /// Only walks made now.
    Fresh,
}

/// The context files `op` reads, after `.dockerignore` and `--exclude`, in the order the copy
/// reads them, without looking at the stage's filesystem: what a cache key needs. Fails as the
/// copy itself would when a source is missing or outside the context.
pub fn context_inputs(
    op: &CopyOp,
    ctx: &BuildContext,
    walks: ContextWalks,
) -> Result<Vec<ContextInput>, ExecError> {
    let mut out = Vec::new();
    if op.from != CopyFrom::Context {
        return Ok(out);
    }
    let excludes = if op.excludes.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&op.excludes).map_err(|e| ExecError::Invalid(e.to_string()))?)
    };
    let excluded = |rel: &str| {
        excludes
            .as_ref()
            .is_some_and(|m| m.matches_or_parent_matches(rel).unwrap_or(false))
    };
    for source in &op.sources {
        let CopySource::Path(pattern) = source else {
            continue;
        };
        let (_, matches) = context_matches(pattern, op.parents, ctx)?;
        for m in matches {
            if !m.rel.is_empty() && excluded(&m.rel) {
                continue;
            }
            let meta = symlink_meta(&m.path)?;
            if meta.is_dir() {
                let walk = match walks {
                    ContextWalks::Prefetched => ctx.walk_prefetched(&m.rel),
                    ContextWalks::Fresh => ctx.walk(&m.rel),
                }
                .map_err(ExecError::Source)?;
                for item in walk {
                    let item = item.map_err(ExecError::Source)?;
                    let inner = item
                        .rel
                        .strip_prefix(&m.rel)
                        .unwrap_or(&item.rel)
                        .trim_start_matches('/');
                    if !inner.is_empty() && excluded(inner) {
                        continue;
                    }
                    out.push(ContextInput {
                        path: join(&m.named, inner),
                        host: item.path,
                        metadata: item.metadata,
                    });
                }
            } else {
                out.push(ContextInput {
                    path: m.named.clone(),
                    host: m.path.clone(),
                    metadata: meta,
                });
            }
        }
    }
    Ok(out)
}
