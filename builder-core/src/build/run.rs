//! RUN: give the step a root made of the stage's layers, run it in the sandbox, and return what
//! it changed as layer entries.
//!
//! With namespace isolation the root is an overlay of each layer unpacked once per machine
//! ([`UnpackedLayers`], keyed by diff_id) under a fresh upper dir, so a base image is unpacked
//! once, not once per build, and capturing a step costs what the step changed. With chroot
//! isolation each stage keeps one rootfs directory, brought up to date with the stage's layers
//! before each step, and the step's change is found by comparing against a snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{BuildError, BuildEvent, Reporter, StageResult};
use crate::diag::Location;
use crate::exec::ExecError;
use crate::exec::fs::FsTree;
use crate::exec::sandbox::{
    self, BindMount, Isolation, Network, OutputLine, Rootfs, RunSpec, Snapshot,
};
use crate::exec::users::resolve_run_user;
use crate::layer::{ArchiveFormat, UnpackedLayers, WhiteoutFormat, unpack_layer};
use crate::oci::media::is_gzip_layer;
use crate::oci::{Entry, OciLayout};
use crate::plan::{RunOp, RunScript};

/// What RUN steps share during one build.
pub(super) struct Runner<'a> {
    pub(super) store: &'a OciLayout,
    pub(super) unpacked: UnpackedLayers,
    pub(super) isolation: Isolation,
    pub(super) volumes: &'a [BindMount],
    pub(super) scratch: &'a Path,
    /// Chroot isolation: each stage's rootfs and how many of its layers it holds.
    pub(super) chroots: BTreeMap<usize, (PathBuf, usize)>,
    pub(super) steps: usize,
}

/// The image's `/etc/passwd` and `/etc/group` as the step will see them, from `dirs` (top-most
/// first): the first layer that has a path decides, and a whiteout there means "absent". Only
/// these two files are read, so RUN never needs the stage's whole filesystem model.
fn user_databases(dirs: &[PathBuf]) -> FsTree {
    use crate::oci::{Content, EntryKind};
    use std::os::unix::fs::FileTypeExt;

    let mut entries = vec![Entry::dir("etc", 0o755, 0, 0, 0)];
    for file in ["etc/passwd", "etc/group"] {
        for dir in dirs {
            let path = dir.join(file);
            match path.symlink_metadata() {
                Ok(m) if m.is_file() => {
                    let mut e = Entry::dir(file, 0o644, 0, 0, 0);
                    e.kind = EntryKind::File(Content::Path(path));
                    entries.push(e);
                    break;
                }
                Ok(m) if m.file_type().is_char_device() || m.is_dir() || m.is_symlink() => break,
                _ => {}
            }
        }
    }
    let mut tree = FsTree::new();
    tree.apply(&entries);
    tree
}

/// How layers are unpacked to be overlay lower directories for this process: rootless
/// overlay reads `user.*` attributes.
pub(super) fn overlay_whiteouts() -> WhiteoutFormat {
    WhiteoutFormat::Overlay {
        user_xattr: crate::exec::sandbox::privilege().uses_user_xattr(),
    }
}

/// Overlayfs copies a hard-linked lower file up alone (without `index=on`), so a step that
/// changes one name of a hard-link group leaves the other names pointing at the old file in the
/// image. The layer is made to say what the step saw: every other name of the group, unless a
/// higher layer or the step itself replaced it, becomes a hard link to the changed file, as the
/// chroot snapshot and buildah give.
fn relink_copied_up(mut entries: Vec<Entry>, rootfs: &Rootfs) -> Vec<Entry> {
    use std::collections::{BTreeSet, HashMap};
    use std::os::unix::fs::MetadataExt;

    use crate::oci::EntryKind;

    let Rootfs::Overlay { lowers, .. } = rootfs else {
        return entries;
    };
    let in_step: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    // Lowers are base first; the top-most lower holding a path is the one the step saw.
    let seen_in = |rel: &str| {
        lowers
            .iter()
            .rposition(|l| l.join(rel).symlink_metadata().is_ok())
    };
    let mut inodes: HashMap<usize, HashMap<u64, Vec<String>>> = HashMap::new();
    let mut added = Vec::new();
    for e in &entries {
        if !matches!(e.kind, EntryKind::File(_)) {
            continue;
        }
        let Some(layer) = seen_in(&e.path) else {
            continue;
        };
        let Ok(meta) = lowers[layer].join(&e.path).symlink_metadata() else {
            continue;
        };
        if !meta.is_file() || meta.nlink() < 2 {
            continue;
        }
        let index = inodes.entry(layer).or_insert_with(|| {
            let mut by_inode: HashMap<u64, Vec<String>> = HashMap::new();
            // A link count above 1 may only be the donor's links (see
            // `UnpackedLayers::begin`): a layer known to have no hard links of its own is not
            // searched.
            if UnpackedLayers::has_no_hard_links(&lowers[layer]) {
                return by_inode;
            }
            for item in walkdir::WalkDir::new(&lowers[layer]).into_iter().flatten() {
                let Ok(m) = item.metadata() else { continue };
                if m.is_file()
                    && m.nlink() > 1
                    && let Ok(rel) = item.path().strip_prefix(&lowers[layer])
                {
                    by_inode
                        .entry(m.ino())
                        .or_default()
                        .push(rel.to_string_lossy().into_owned());
                }
            }
            by_inode
        });
        for peer in index.get(&meta.ino()).into_iter().flatten() {
            let shadowed = in_step.contains(peer) || seen_in(peer) != Some(layer);
            if peer != &e.path && !shadowed {
                let mut link = e.clone();
                link.path = peer.clone();
                link.kind = EntryKind::Hardlink(e.path.clone());
                added.push(link);
            }
        }
    }
    entries.extend(added);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    entries
}

fn format_of(media_type: &str) -> ArchiveFormat {
    if is_gzip_layer(media_type) {
        ArchiveFormat::Gzip
    } else {
        ArchiveFormat::Tar
    }
}

impl Runner<'_> {
    /// A `#!` here-document as the read-only directory the step sees at
    /// [`RunScript::DIR`]: the script alone, executable, outside every layer.
    fn script_mount(&self, script: &RunScript) -> Result<BindMount, BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.scratch.join(format!("run-{}-script", self.steps));
        std::fs::create_dir_all(&dir).map_err(BuildError::Scratch)?;
        let file = dir.join(&script.name);
        std::fs::write(&file, &script.content).map_err(BuildError::Scratch)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
            .map_err(BuildError::Scratch)?;
        Ok(BindMount {
            host: dir,
            target: RunScript::DIR.to_string(),
            read_only: true,
        })
    }

    /// Runs `op` on top of `result`'s layers; returns the step's layer entries.
    pub(super) fn run(
        &mut self,
        stage: usize,
        op: &RunOp,
        result: &mut StageResult,
        location: &Location,
        number: usize,
        reporter: &dyn Reporter,
    ) -> Result<Vec<Entry>, BuildError> {
        self.steps += 1;
        if !op.mounts.is_empty() {
            return Err(BuildError::Unsupported {
                message: format!(
                    "RUN --mount at {location} is not supported yet (cache, secret and bind mounts come later)"
                ),
                location: location.clone(),
            });
        }
        result.fetch_blobs(self.store)?;
        let step_err = |source: ExecError| BuildError::Step {
            keyword: "RUN".to_string(),
            location: location.clone(),
            source,
        };
        let unpack_err = |source| BuildError::Unpack {
            location: location.clone(),
            source,
        };
        let sandbox_err = |source| BuildError::Sandbox {
            location: location.clone(),
            source,
        };
        // The root the step runs in: the unpacked layers under an upper dir, or the stage's
        // chroot brought up to date.
        let (rootfs, user_dirs) = match self.isolation {
            Isolation::Namespace => {
                let mut lowers = Vec::new();
                for layer in &result.layers {
                    let blob = self.store.blob_path(&layer.digest);
                    let whiteouts = overlay_whiteouts();
                    lowers.push(
                        self.unpacked
                            .ensure(layer, &blob, whiteouts)
                            .map_err(unpack_err)?,
                    );
                }
                let dir = self.scratch.join(format!("run-{}", self.steps));
                let (upper, work) = (dir.join("upper"), dir.join("work"));
                for d in [&upper, &work] {
                    std::fs::create_dir_all(d).map_err(BuildError::Scratch)?;
                }
                let user_dirs = lowers.iter().rev().cloned().collect();
                (
                    Rootfs::Overlay {
                        lowers,
                        upper,
                        work,
                    },
                    user_dirs,
                )
            }
            Isolation::Chroot => {
                let (dir, applied) = self
                    .chroots
                    .entry(stage)
                    .or_insert_with(|| (self.scratch.join(format!("rootfs-{stage}")), 0))
                    .clone();
                std::fs::create_dir_all(&dir).map_err(BuildError::Scratch)?;
                for layer in &result.layers[applied..] {
                    let blob = self.store.blob_path(&layer.digest);
                    unpack_layer(
                        &blob,
                        format_of(&layer.media_type),
                        &dir,
                        WhiteoutFormat::Apply,
                    )
                    .map_err(unpack_err)?;
                }
                (Rootfs::Chroot { dir: dir.clone() }, vec![dir])
            }
        };
        let users = user_databases(&user_dirs);
        let user = resolve_run_user(op.user.as_deref(), &users)
            .map_err(|e| step_err(ExecError::User(e)))?;
        let mut env = op.env.clone();
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".to_string(), user.home.clone()));
        }
        let network = match op.network.as_deref() {
            None | Some("default") | Some("host") => Network::Host,
            Some("none") => Network::None,
            Some(other) => {
                return Err(BuildError::Unsupported {
                    message: format!("RUN --network={other} is not supported; use host or none"),
                    location: location.clone(),
                });
            }
        };
        let mut mounts = self.volumes.to_vec();
        if let Some(script) = &op.script {
            mounts.push(self.script_mount(script)?);
        }
        let spec = RunSpec {
            args: op.args.clone(),
            env,
            cwd: op.workdir.clone(),
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.groups.clone(),
            network,
            mounts,
            hostname: "kiln".to_string(),
        };
        let mut output = |line: OutputLine| {
            reporter.report(BuildEvent::RunOutput {
                number,
                line: line.text,
            });
        };
        let (outcome, entries) = match &rootfs {
            Rootfs::Overlay { upper, .. } => {
                let outcome = sandbox::run(&spec, &rootfs, self.isolation, &mut output)
                    .map_err(sandbox_err)?;
                let entries = if outcome.exit_code == 0 {
                    let entries = sandbox::upper_to_entries(upper).map_err(sandbox_err)?;
                    relink_copied_up(entries, &rootfs)
                } else {
                    Vec::new()
                };
                (outcome, entries)
            }
            Rootfs::Chroot { dir } => {
                let snapshot = Snapshot::take(dir).map_err(sandbox_err)?;
                let outcome = sandbox::run(&spec, &rootfs, self.isolation, &mut output)
                    .map_err(sandbox_err)?;
                let entries = if outcome.exit_code == 0 {
                    snapshot.diff(dir).map_err(sandbox_err)?
                } else {
                    Vec::new()
                };
                // The rootfs now holds this step's change too.
                self.chroots
                    .insert(stage, (dir.clone(), result.layers.len() + 1));
                (outcome, entries)
            }
        };
        if outcome.exit_code != 0 {
            return Err(BuildError::RunFailed {
                location: location.clone(),
                code: outcome.exit_code,
                last_lines: outcome.last_lines,
            });
        }
        Ok(entries)
    }
}
