//! Resolving symbolic links without leaving the context root.
//!
//! BuildKit follows a `COPY` source that is a symbolic link, but scoped to the context: an absolute
//! target is read relative to the context root and `..` stops at the root, so no link can reach a
//! host file outside the context. Components that do not exist are kept as written.

use std::fs;
use std::io;
use std::path::Path;

use super::error::ContextError;

/// Linux's limit on links followed while resolving one path.
const MAX_LINKS: usize = 255;

/// Resolves `rel` (slash-separated, relative to `root`) to a context path with no symbolic links
/// in its parent directories, following a link in the last component too when `follow_last`.
pub(crate) fn resolve(root: &Path, rel: &str, follow_last: bool) -> Result<String, ContextError> {
    let mut resolved: Vec<String> = Vec::new();
    let mut remaining: Vec<String> = components(rel).rev().collect();
    let mut links = 0usize;
    while let Some(component) = remaining.pop() {
        if component == ".." {
            resolved.pop();
            continue;
        }
        if remaining.is_empty() && !follow_last {
            resolved.push(component);
            break;
        }
        resolved.push(component);
        let candidate = root.join(resolved.join("/"));
        let metadata = match fs::symlink_metadata(&candidate) {
            Ok(metadata) => metadata,
            Err(error) if is_missing(&error) => continue,
            Err(error) => return Err(ContextError::io("stat", candidate, error)),
        };
        if !metadata.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(ContextError::TooManySymlinks {
                rel: rel.to_owned(),
            });
        }
        let target = fs::read_link(&candidate)
            .map_err(|error| ContextError::io("read link", &candidate, error))?;
        let Some(target) = target.to_str() else {
            return Err(ContextError::NonUtf8Name { path: candidate });
        };
        resolved.pop();
        if target.starts_with('/') {
            resolved.clear();
        }
        remaining.extend(components(target).rev());
    }
    Ok(resolved.join("/"))
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .map(str::to_owned)
}

fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
