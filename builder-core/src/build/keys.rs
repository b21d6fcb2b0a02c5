//! What goes into each step's cache key: the parent's key, the step's canonical form, and its
//! inputs (the context files a COPY reads as they will be in the layer, the stage or image a
//! `COPY --from` reads, the build args and environment a RUN sees).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::cache::{CacheKey, FileState, KeyBuilder, StepInputs};
use crate::context::{BuildContext, FileHashes};
use crate::dockerfile::{Command, Dockerfile};
use crate::exec::ExecError;
use crate::exec::copy::{ContextWalks, context_inputs};
use crate::oci::{Digest, Platform};
use crate::plan::{Op, Step};

/// The key a stage's chain starts from: the base image (or none), the platform, and
/// `SOURCE_DATE_EPOCH`, which clamps the times in every layer and so is part of every key.
pub(super) fn root_key(
    image: Option<&Digest>,
    platform: &Platform,
    source_date_epoch: Option<i64>,
) -> CacheKey {
    let mut k = match image {
        None => KeyBuilder::new("scratch"),
        Some(d) => {
            let mut k = KeyBuilder::new("image");
            k.str("digest", &d.to_string());
            k
        }
    };
    k.str("platform", &platform.to_string()).opt(
        "source_date_epoch",
        source_date_epoch.map(|s| s.to_string()).as_deref(),
    );
    k.finish()
}

/// The `COPY`/`ADD` sources in the context that `parsed` names as written, for
/// [`BuildContext::prefetch`]: those that variables, quotes or escapes cannot change (the plan
/// expands the rest), that are neither here-documents nor URLs, and without `--from` or
/// `--parents`. A source the plan then reads differently is walked again when asked for.
pub(super) fn prefetch_sources(parsed: &Dockerfile) -> Vec<&str> {
    let escape = parsed.directives.escape;
    let literal = |word: &&String| {
        !word.starts_with("<<")
            && !word.contains("://")
            && !word.starts_with("git@")
            && !word.contains(['$', '\'', '"', escape])
    };
    parsed
        .instructions
        .iter()
        .filter(|i| i.flag("from").is_none() && i.flag("parents").is_none())
        .flat_map(|i| match &i.command {
            Command::Copy { sources, .. } | Command::Add { sources, .. } => sources.as_slice(),
            _ => &[],
        })
        .filter(literal)
        .map(String::as_str)
        .collect()
}

/// Where a step stands in the build, for finding the inputs of the last build at the same place.
/// The context is named by its directory's name and the Dockerfile by its path inside it, so a
/// fresh checkout of the same project in another directory (as CI runners make) still finds
/// what the last build saw.
pub(super) fn slot(context: &Path, dockerfile: &Path, stage: usize, step: usize) -> CacheKey {
    let dockerfile = std::fs::canonicalize(dockerfile).unwrap_or_else(|_| dockerfile.to_path_buf());
    let dockerfile = dockerfile.strip_prefix(context).unwrap_or(&dockerfile);
    let name = context
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    KeyBuilder::new("slot")
        .str("context", &name)
        .str("dockerfile", &dockerfile.to_string_lossy())
        .str("stage", &stage.to_string())
        .str("step", &step.to_string())
        .finish()
}

/// A step's key and the inputs it was made from.
pub(super) struct StepKey {
    pub key: CacheKey,
    pub inputs: StepInputs,
}

/// The key of `step` and the inputs it was made from, from the context walks `walks` allows.
#[allow(clippy::too_many_arguments)]
pub(super) fn step_key(
    parent: &CacheKey,
    step: &Step,
    source_date_epoch: Option<i64>,
    canonical: String,
    from: Option<String>,
    base: Option<String>,
    context: &BuildContext,
    hashes: &mut FileHashes,
    walks: ContextWalks,
) -> Result<StepKey, ExecError> {
    let mut inputs = StepInputs {
        key: None,
        instruction: canonical,
        shown: step.created_by.clone(),
        parent: Some(parent.clone()),
        base,
        source_date_epoch,
        from,
        ..StepInputs::default()
    };
    match &step.op {
        Op::Copy(op) => {
            inputs.scope_args = step.build_args.clone();
            let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
            let read = context_inputs(op, context, walks)?;
            // The regular files whose content goes into the key: a second path to an inode
            // already listed is a hard link to the first, keyed by that path instead.
            let mut inodes = std::collections::HashSet::new();
            let hashed: Vec<bool> = read
                .iter()
                .map(|i| {
                    let m = &i.metadata;
                    m.is_file() && (m.nlink() <= 1 || inodes.insert((m.dev(), m.ino())))
                })
                .collect();
            let regular: Vec<(&Path, &std::fs::Metadata)> = read
                .iter()
                .zip(&hashed)
                .filter(|(_, hashed)| **hashed)
                .map(|(i, _)| (i.host.as_path(), &i.metadata))
                .collect();
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
            let mut digests = hashes.digest_all(&regular, threads).into_iter();
            drop(regular);
            for (input, hashed) in read.into_iter().zip(hashed) {
                let digest = if hashed { digests.next() } else { None };
                let state = file_state(
                    &input.path,
                    &input.host,
                    &input.metadata,
                    op.chmod,
                    digest,
                    &mut first_link,
                )?;
                inputs.files.insert(input.path, state);
            }
        }
        Op::Run(op) => {
            for (name, value) in &op.env {
                if op.proxies.contains(name) {
                    continue;
                }
                if op.build_args.contains(name) {
                    inputs.args.insert(name.clone(), value.clone());
                } else {
                    inputs.env.insert(name.clone(), value.clone());
                }
            }
        }
        Op::Workdir { .. } | Op::Config => {}
    }
    let key = key_of(&inputs);
    inputs.key = Some(key.clone());
    Ok(StepKey { key, inputs })
}

fn key_of(inputs: &StepInputs) -> CacheKey {
    let mut k = KeyBuilder::new("step");
    if let Some(p) = &inputs.parent {
        k.key("parent", p);
    }
    k.str("instruction", &inputs.instruction);
    k.opt("from", inputs.from.as_deref());
    map_field(&mut k, "args", &inputs.args);
    map_field(&mut k, "env", &inputs.env);
    k.field("files", &(inputs.files.len() as u64).to_be_bytes());
    for (path, state) in &inputs.files {
        k.str("path", path)
            .str("type", &state.kind)
            .field("mode", &state.mode.to_be_bytes())
            .str("content", &state.content);
    }
    k.finish()
}

fn map_field(k: &mut KeyBuilder, name: &str, map: &BTreeMap<String, String>) {
    k.field(name, &(map.len() as u64).to_be_bytes());
    for (key, value) in map {
        k.str("name", key).str("value", value);
    }
}

/// A context file as it will be in the layer: type, mode after `--chmod` (links are always
/// 0777), and content digest (`digest`, read for a regular file), link target or device
/// numbers. A second path to an inode already seen is a hard link to the first, as the copy
/// makes it.
fn file_state(
    path: &str,
    host: &Path,
    meta: &std::fs::Metadata,
    chmod: Option<u32>,
    digest: Option<std::io::Result<Digest>>,
    first_link: &mut HashMap<(u64, u64), String>,
) -> Result<FileState, ExecError> {
    let io = |action: &'static str| {
        move |source| ExecError::Io {
            action,
            path: host.to_path_buf(),
            source,
        }
    };
    let ft = meta.file_type();
    let mode = if ft.is_symlink() {
        0o777
    } else {
        chmod.unwrap_or(meta.mode() & 0o7777)
    };
    let (kind, content) = if ft.is_dir() {
        ("dir", String::new())
    } else if ft.is_symlink() {
        let target = std::fs::read_link(host).map_err(io("read link"))?;
        ("symlink", target.to_string_lossy().into_owned())
    } else if ft.is_file() {
        let inode = (meta.dev(), meta.ino());
        match first_link.get(&inode) {
            Some(first) if meta.nlink() > 1 => ("hardlink", first.clone()),
            _ => {
                if meta.nlink() > 1 {
                    first_link.insert(inode, path.to_string());
                }
                let digest = digest
                    .unwrap_or_else(|| Err(std::io::Error::other("not read")))
                    .map_err(io("read"))?;
                ("file", digest.to_string())
            }
        }
    } else if ft.is_fifo() {
        ("fifo", String::new())
    } else if ft.is_char_device() || ft.is_block_device() {
        let kind = if ft.is_char_device() { "char" } else { "block" };
        (kind, meta.rdev().to_string())
    } else {
        ("socket", String::new())
    };
    Ok(FileState {
        kind: kind.to_string(),
        mode,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::prefetch_sources;
    use crate::diag::SourceFile;
    use crate::dockerfile;

    #[test]
    fn prefetch_takes_the_context_sources_that_read_as_written() {
        let text = r#"FROM scratch AS s
ARG V=x
COPY a b/ /x/
COPY ["c d", "/y/"]
COPY --from=s e /z/
COPY --parents p/ /
COPY $V ${V}/ /w/
COPY "q" 'r' s\t /v/
COPY <<EOF /f
hi
EOF
ADD http://example.com/a.tar /u/
ADD git@github.com:o/r.git /g/
ADD src.tar *.md /t/
COPY --chmod=644 --exclude=*.log logs/ /l/
"#;
        let parsed = dockerfile::parse(SourceFile::new("Dockerfile", text)).unwrap();
        assert_eq!(
            prefetch_sources(&parsed),
            ["a", "b/", "c d", "src.tar", "*.md", "logs/"]
        );
    }
}
