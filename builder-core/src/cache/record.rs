//! What the cache keeps per key (the layer a step made), and what it keeps per step position (the
//! inputs the key was made from) so that a later miss can say what changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use crate::oci::{Digest, LayerRef};

/// A cached step result: the layer it made, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The key.
    pub key: CacheKey,
    /// When the step was built, seconds since the epoch (for `--cache-ttl`).
    pub created: i64,
    /// The instruction, as history shows it (`COPY app.py /app/`).
    pub created_by: String,
    /// The layer, or `None` for a step that changed nothing (a WORKDIR that existed).
    pub layer: Option<CachedLayer>,
}

/// A layer descriptor plus the uncompressed digest the image config needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The uncompressed tar's digest.
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
}

impl From<&LayerRef> for CachedLayer {
    fn from(l: &LayerRef) -> CachedLayer {
        CachedLayer {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            diff_id: l.diff_id.clone(),
        }
    }
}

impl From<&CachedLayer> for LayerRef {
    fn from(l: &CachedLayer) -> LayerRef {
        LayerRef {
            digest: l.digest.clone(),
            diff_id: l.diff_id.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }
    }
}

/// One file a step read, as it enters the key: what it will be in the layer, never its mtime or
/// the host's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// `file`, `dir`, `symlink`, `hardlink`, `fifo`, `char`, `block`.
    pub kind: String,
    /// Permission bits as they will be in the layer (after `--chmod`).
    pub mode: u32,
    /// The content digest (files), link target (links) or device numbers (devices).
    pub content: String,
}

/// What a step's key was made from, kept per position in the build so a miss can be explained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInputs {
    /// The key these inputs gave.
    pub key: Option<CacheKey>,
    /// The instruction in canonical form (every field that shapes the layer).
    #[serde(default)]
    pub instruction: String,
    /// The instruction as history shows it (`COPY app.py /app/`), for messages.
    #[serde(default)]
    pub shown: String,
    /// Build args in scope that are not part of the key (a COPY's, whose values reach the layer
    /// only through its expanded words): they say which arg changed an instruction.
    #[serde(default)]
    pub scope_args: BTreeMap<String, String>,
    /// The key of the step before it in the chain (or of the stage's base).
    #[serde(default)]
    pub parent: Option<CacheKey>,
    /// For a stage's first step: the image the stage starts from, as `name@digest`.
    #[serde(default)]
    pub base: Option<String>,
    /// `SOURCE_DATE_EPOCH`, which clamps every layer's times.
    #[serde(default)]
    pub source_date_epoch: Option<i64>,
    /// For `COPY --from`: the stage key or image digest it reads.
    #[serde(default)]
    pub from: Option<String>,
    /// Build args the step sees, by name.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Environment variables (ENV) the step sees, by name.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files the step reads from the build context, by path relative to each source.
    #[serde(default)]
    pub files: BTreeMap<String, FileState>,
}

/// Why a step missed the cache. Each names its cause, so a user can see why a build was slow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MissReason {
    /// The instruction itself is different (edited, or a variable in it expands differently).
    InstructionChanged {
        /// Its previous canonical form.
        old: String,
        /// Its canonical form now.
        new: String,
    },
    /// The image the stage starts from is a different image now.
    BaseChanged {
        /// Before, as `name@digest`.
        old: String,
        /// Now.
        new: String,
    },
    /// What a `COPY --from` reads (a stage's result or an image) is different.
    SourceChanged {
        /// Before: a stage key or an image digest.
        old: String,
        /// Now.
        new: String,
    },
    /// A context file the step copies changed.
    FileChanged {
        /// The path (relative to its COPY source).
        path: String,
        /// Its previous content digest (or link target / kind / mode).
        old: String,
        /// Its content now.
        new: String,
    },
    /// A context file is new to the step.
    FileAdded {
        /// The path.
        path: String,
    },
    /// A context file the step copied is gone.
    FileRemoved {
        /// The path.
        path: String,
    },
    /// A build arg the step sees changed.
    ArgChanged {
        /// The arg.
        name: String,
        /// Its previous value (`None`: unset).
        old: Option<String>,
        /// Its value now.
        new: Option<String>,
    },
    /// An environment variable the step sees changed.
    EnvChanged {
        /// The variable.
        name: String,
        /// Its previous value.
        old: Option<String>,
        /// Its value now.
        new: Option<String>,
    },
    /// The step before it in the chain produced a different result than last time.
    ParentChanged,
    /// An earlier step of the chain missed, so this step's parent is new.
    ParentMissed {
        /// The number of that step in the build (as progress shows it).
        step: usize,
    },
    /// The stage a `COPY --from` reads was rebuilt.
    SourceStageChanged {
        /// The stage.
        stage: String,
        /// The step of that stage that missed.
        step: usize,
    },
    /// The cache has no entry for the key (first build, or pruned).
    NotInCache,
    /// The entry is older than `--cache-ttl`.
    Expired {
        /// Its age in seconds.
        age_secs: i64,
    },
    /// `--no-cache` (or `--no-cache-filter` naming the stage).
    NoCache,
}

impl std::fmt::Display for MissReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MissReason::InstructionChanged { old, new } => {
                write!(f, "instruction changed: `{old}` → `{new}`")
            }
            MissReason::BaseChanged { old, new } => {
                write!(f, "base image changed: {old} → {new}")
            }
            MissReason::SourceChanged { old, new } => {
                write!(
                    f,
                    "COPY --from source changed: {} → {}",
                    short(old),
                    short(new)
                )
            }
            MissReason::ParentChanged => f.write_str("the step before it changed"),
            MissReason::FileChanged { path, old, new } => {
                write!(f, "file `{path}` changed: {} → {}", short(old), short(new))
            }
            MissReason::FileAdded { path } => write!(f, "file `{path}` was added"),
            MissReason::FileRemoved { path } => write!(f, "file `{path}` was removed"),
            MissReason::ArgChanged { name, old, new } => write!(
                f,
                "build arg `{name}` changed: {} → {}",
                shown(old.as_deref()),
                shown(new.as_deref())
            ),
            MissReason::EnvChanged { name, old, new } => write!(
                f,
                "env `{name}` changed: {} → {}",
                shown(old.as_deref()),
                shown(new.as_deref())
            ),
            MissReason::ParentMissed { step } => write!(f, "parent step {step} missed"),
            MissReason::SourceStageChanged { stage, step } => {
                write!(
                    f,
                    "stage `{stage}` it copies from changed (step {step} missed)"
                )
            }
            MissReason::NotInCache => f.write_str("not in cache"),
            MissReason::Expired { age_secs } => {
                write!(f, "expired (built {} ago)", human_age(*age_secs))
            }
            MissReason::NoCache => f.write_str("--no-cache"),
        }
    }
}

/// `sha256:0123456789ab…` for digests; other values as they are.
fn short(value: &str) -> String {
    match value.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => value.to_string(),
    }
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("`{v}`"),
        None => "unset".to_string(),
    }
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

impl StepInputs {
    /// The first difference between `previous` (the last build at this position) and these
    /// inputs: the instruction, the base image, the `--from` source, a file (in path order), a
    /// build arg, the environment, and last the parent. `None` when they are the same.
    pub fn explain(&self, previous: &StepInputs) -> Option<MissReason> {
        if self.instruction != previous.instruction {
            let (old, new) = if self.shown != previous.shown {
                (previous.shown.clone(), self.shown.clone())
            } else {
                (previous.instruction.clone(), self.instruction.clone())
            };
            if let Some((name, old, new)) = self.arg_behind(previous, &old, &new) {
                return Some(MissReason::ArgChanged { name, old, new });
            }
            return Some(MissReason::InstructionChanged { old, new });
        }
        if self.base != previous.base
            && let (Some(old), Some(new)) = (&previous.base, &self.base)
        {
            return Some(MissReason::BaseChanged {
                old: old.clone(),
                new: new.clone(),
            });
        }
        if self.source_date_epoch != previous.source_date_epoch {
            let shown = |v: Option<i64>| v.map(|v| v.to_string());
            return Some(MissReason::EnvChanged {
                name: "SOURCE_DATE_EPOCH".to_string(),
                old: shown(previous.source_date_epoch),
                new: shown(self.source_date_epoch),
            });
        }
        if self.from != previous.from {
            return Some(MissReason::SourceChanged {
                old: previous.from.clone().unwrap_or_default(),
                new: self.from.clone().unwrap_or_default(),
            });
        }
        for (path, now) in &self.files {
            match previous.files.get(path) {
                None => return Some(MissReason::FileAdded { path: path.clone() }),
                Some(before) if before != now => {
                    let (old, new) = if before.kind != now.kind {
                        (before.kind.clone(), now.kind.clone())
                    } else if before.mode != now.mode {
                        (
                            format!("mode {:o}", before.mode),
                            format!("mode {:o}", now.mode),
                        )
                    } else {
                        (before.content.clone(), now.content.clone())
                    };
                    return Some(MissReason::FileChanged {
                        path: path.clone(),
                        old,
                        new,
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(path) = previous.files.keys().find(|p| !self.files.contains_key(*p)) {
            return Some(MissReason::FileRemoved { path: path.clone() });
        }
        if let Some((name, old, new)) = first_change(&previous.args, &self.args) {
            return Some(MissReason::ArgChanged { name, old, new });
        }
        if let Some((name, old, new)) = first_change(&previous.env, &self.env) {
            return Some(MissReason::EnvChanged { name, old, new });
        }
        if self.parent != previous.parent {
            return Some(MissReason::ParentChanged);
        }
        None
    }

    /// The build arg whose new value turned the instruction `old` into `new`, if build args
    /// alone explain the change: putting each changed arg's new value in place of its old one in
    /// `old` must give `new`. An instruction that was edited while some arg in scope also
    /// changed is then reported as edited, not blamed on the arg.
    fn arg_behind(&self, previous: &StepInputs, old: &str, new: &str) -> Option<Change> {
        let mut all_before = previous.scope_args.clone();
        all_before.extend(previous.args.clone());
        let mut all_now = self.scope_args.clone();
        all_now.extend(self.args.clone());
        let changes = all_changes(&all_before, &all_now);
        let mut substituted = old.to_string();
        for (_, before, now) in &changes {
            if let Some(before) = before.as_deref().filter(|b| !b.is_empty()) {
                substituted = substituted.replace(before, now.as_deref().unwrap_or(""));
            }
        }
        if substituted == new {
            return changes.into_iter().find(|(_, before, _)| {
                before
                    .as_deref()
                    .is_some_and(|b| !b.is_empty() && old.contains(b))
            });
        }
        // An arg that was unset or empty cannot be found in the old text: it explains the
        // change when its new value is what appeared.
        changes.into_iter().find(|(_, before, now)| {
            before.as_deref().is_none_or(str::is_empty)
                && now
                    .as_deref()
                    .is_some_and(|n| !n.is_empty() && new.contains(n) && !old.contains(n))
        })
    }
}

type Change = (String, Option<String>, Option<String>);

/// Every name whose value differs between `old` and `new`, in name order.
fn all_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<Change> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (old.get(name), new.get(name));
            (o != n).then(|| (name.clone(), o.cloned(), n.cloned()))
        })
        .collect()
}

fn first_change(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Option<Change> {
    all_changes(old, new).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str, mode: u32) -> FileState {
        FileState {
            kind: "file".into(),
            mode,
            content: content.into(),
        }
    }

    #[test]
    fn explain_names_the_changed_file_with_both_hashes() {
        let old_hash = format!("sha256:{}", "a".repeat(64));
        let new_hash = format!("sha256:{}", "b".repeat(64));
        let mut before = StepInputs::default();
        before.files.insert("app.py".into(), file(&old_hash, 0o644));
        before.files.insert("lib.py".into(), file(&old_hash, 0o644));
        let mut now = before.clone();
        now.files.insert("lib.py".into(), file(&new_hash, 0o644));
        let reason = now.explain(&before).unwrap();
        assert_eq!(
            reason.to_string(),
            "file `lib.py` changed: sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…"
        );
        now.files.insert("lib.py".into(), file(&old_hash, 0o755));
        assert_eq!(
            now.explain(&before).unwrap().to_string(),
            "file `lib.py` changed: mode 644 → mode 755"
        );
        now.files.remove("lib.py");
        assert_eq!(
            now.explain(&before).unwrap().to_string(),
            "file `lib.py` was removed"
        );
    }

    fn copy(shown: &str, args: &[(&str, &str)]) -> StepInputs {
        StepInputs {
            instruction: format!("{{\"op\":\"{shown}\"}}"),
            shown: shown.into(),
            scope_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..StepInputs::default()
        }
    }

    #[test]
    fn an_instruction_changes_by_an_arg_only_when_the_arg_explains_the_new_text() {
        let before = copy("COPY a.txt /x", &[("NAME", "a"), ("UNUSED", "1")]);
        let by_arg = copy("COPY b.txt /x", &[("NAME", "b"), ("UNUSED", "1")]);
        assert_eq!(
            by_arg.explain(&before).unwrap().to_string(),
            "build arg `NAME` changed: `a` → `b`"
        );
        let edited = copy("COPY b.txt /x", &[("NAME", "a"), ("UNUSED", "2")]);
        assert_eq!(
            edited.explain(&before).unwrap().to_string(),
            "instruction changed: `COPY a.txt /x` → `COPY b.txt /x`"
        );
        let both = copy("COPY b.txt /x", &[("NAME", "b"), ("UNUSED", "2")]);
        assert_eq!(
            both.explain(&before).unwrap().to_string(),
            "build arg `NAME` changed: `a` → `b`"
        );
        let unset = copy("COPY .txt /x", &[("UNUSED", "1")]);
        let set = copy("COPY dev.txt /x", &[("SUFFIX", "dev"), ("UNUSED", "1")]);
        assert_eq!(
            set.explain(&unset).unwrap().to_string(),
            "build arg `SUFFIX` changed: unset → `dev`"
        );
    }

    #[test]
    fn explain_names_args_before_env_and_nothing_when_equal() {
        let mut before = StepInputs::default();
        before.args.insert("VERSION".into(), "1".into());
        before.env.insert("PATH".into(), "/bin".into());
        assert_eq!(before.explain(&before), None);
        let mut now = before.clone();
        now.args.insert("VERSION".into(), "2".into());
        now.env.insert("PATH".into(), "/usr/bin".into());
        assert_eq!(
            now.explain(&before).unwrap().to_string(),
            "build arg `VERSION` changed: `1` → `2`"
        );
        now.args = before.args.clone();
        now.env.remove("PATH");
        assert_eq!(
            now.explain(&before).unwrap().to_string(),
            "env `PATH` changed: `/bin` → unset"
        );
    }
}
