//! What chroot isolation puts into the root for the step, and takes out again afterwards so
//! the diff never sees it: device nodes (by `mknod`, where allowed), the host's resolv.conf and
//! hosts, and volumes (copied in, since mounting is what this isolation cannot do).
//!
//! Every change is recorded and undone newest first, including the modification times of the
//! directories touched, on success, on failure and on drop.

use std::fs::{File, FileTimes};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{FileType, Mode};
use walkdir::WalkDir;

use super::{BindMount, SandboxError};

/// Device nodes created in `/dev`: name, major, minor.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// One change to undo.
enum Undo {
    /// A file, device or tree the sandbox created.
    Remove(PathBuf),
    /// A file moved aside to make room; put back.
    Restore { saved: PathBuf, path: PathBuf },
    /// A directory's times before the sandbox changed its contents.
    Times {
        dir: PathBuf,
        accessed: SystemTime,
        modified: SystemTime,
    },
}

/// The changes made to a chroot root; undone by [`Injections::undo`] or on drop.
pub(crate) struct Injections {
    root: PathBuf,
    undo: Vec<Undo>,
}

impl Injections {
    pub(crate) fn new(root: &Path) -> Injections {
        Injections {
            root: root.to_path_buf(),
            undo: Vec::new(),
        }
    }

    /// Puts devices, resolv.conf, hosts and the volumes into the root.
    pub(crate) fn prepare(&mut self, volumes: &[BindMount]) -> Result<(), SandboxError> {
        if let Some(dev) = self.ensure_dir("dev")? {
            for (name, major, minor) in DEVICES {
                self.mknod(&dev.join(name), major, minor)?;
            }
        }
        if let Some(etc) = self.ensure_dir("etc")? {
            for name in ["resolv.conf", "hosts"] {
                let host = Path::new("/etc").join(name);
                if host.is_file() {
                    self.place_file(&host, &etc.join(name))?;
                }
            }
        }
        for volume in volumes {
            self.place_volume(volume)?;
        }
        Ok(())
    }

    /// Undoes every change, newest first; reports the first failure after trying them all.
    pub(crate) fn undo(&mut self) -> Result<(), SandboxError> {
        let mut first = Ok(());
        while let Some(step) = self.undo.pop() {
            let result = match &step {
                Undo::Remove(path) => {
                    remove_any(path).map_err(|e| SandboxError::io("remove", path, e))
                }
                Undo::Restore { saved, path } => {
                    std::fs::rename(saved, path).map_err(|e| SandboxError::io("restore", path, e))
                }
                Undo::Times {
                    dir,
                    accessed,
                    modified,
                } => set_times(dir, *accessed, *modified)
                    .map_err(|e| SandboxError::io("restore the times of", dir, e)),
            };
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// Remembers `dir`'s times so they can be put back after its contents change.
    fn keep_times(&mut self, dir: &Path) -> Result<(), SandboxError> {
        let meta = std::fs::metadata(dir).map_err(|e| SandboxError::io("inspect", dir, e))?;
        let (Ok(accessed), Ok(modified)) = (meta.accessed(), meta.modified()) else {
            return Ok(());
        };
        self.undo.push(Undo::Times {
            dir: dir.to_path_buf(),
            accessed,
            modified,
        });
        Ok(())
    }

    /// `root/name` as a real directory (created when missing); `None` when it is something
    /// else (a symlink could point anywhere on the host).
    fn ensure_dir(&mut self, name: &str) -> Result<Option<PathBuf>, SandboxError> {
        let dir = self.root.join(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {
                self.keep_times(&dir)?;
                Ok(Some(dir))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let root = self.root.clone();
                self.keep_times(&root)?;
                std::fs::create_dir(&dir).map_err(|e| SandboxError::io("create", &dir, e))?;
                self.undo.push(Undo::Remove(dir.clone()));
                Ok(Some(dir))
            }
            Err(e) => Err(SandboxError::io("inspect", dir, e)),
        }
    }

    /// A character device, when `mknod` is allowed and the name is free.
    fn mknod(&mut self, path: &Path, major: u32, minor: u32) -> Result<(), SandboxError> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Ok(());
        }
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        );
        if made.is_err() {
            // Without CAP_MKNOD the step runs without that device.
            return Ok(());
        }
        self.undo.push(Undo::Remove(path.to_path_buf()));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| SandboxError::io("set the mode of", path, e))
    }

    /// Copies host file `source` to `path`, moving a regular file there aside first; leaves
    /// a symlink at `path` alone (writing through it could reach the host).
    fn place_file(&mut self, source: &Path, path: &Path) -> Result<(), SandboxError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {
                let saved = saved_name(path);
                std::fs::rename(path, &saved)
                    .map_err(|e| SandboxError::io("move aside", path, e))?;
                self.undo.push(Undo::Restore {
                    saved,
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => return Ok(()),
            Err(_) => {}
        }
        self.undo.push(Undo::Remove(path.to_path_buf()));
        std::fs::copy(source, path).map_err(|e| SandboxError::io("copy", source, e))?;
        Ok(())
    }

    /// Copies a volume in, creating missing parents; refuses targets reached through a
    /// symlink and existing directories.
    fn place_volume(&mut self, volume: &BindMount) -> Result<(), SandboxError> {
        let unsupported = |what: String| SandboxError::Unsupported {
            what,
            isolation: "chroot",
        };
        let parts: Vec<&str> = volume.target.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            return Err(unsupported("a volume on `/`".into()));
        };
        let mut dir = self.root.clone();
        let mut kept = false;
        for part in parents {
            let next = dir.join(part);
            match std::fs::symlink_metadata(&next) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(unsupported(format!(
                        "volume `{}` through a symlink or file",
                        volume.target
                    )));
                }
                Err(_) => {
                    if !kept {
                        self.keep_times(&dir)?;
                        kept = true;
                    }
                    std::fs::create_dir(&next).map_err(|e| SandboxError::io("create", &next, e))?;
                    self.undo.push(Undo::Remove(next.clone()));
                }
            }
            dir = next;
        }
        if !kept {
            self.keep_times(&dir)?;
        }
        let target = dir.join(last);
        let source_meta = std::fs::metadata(&volume.host)
            .map_err(|e| SandboxError::io("inspect", &volume.host, e))?;
        if source_meta.is_file() {
            if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
                return Err(unsupported(format!(
                    "volume `{}` over a directory or symlink",
                    volume.target
                )));
            }
            self.place_file(&volume.host, &target)?;
            if volume.read_only {
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444));
            }
            return Ok(());
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(unsupported(format!(
                "directory volume `{}` over an existing path",
                volume.target
            )));
        }
        self.undo.push(Undo::Remove(target.clone()));
        copy_tree(&volume.host, &target)
    }
}

impl Drop for Injections {
    fn drop(&mut self) {
        let _ = self.undo();
    }
}

fn saved_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".kiln-saved-{name}"))
}

fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_times(dir: &Path, accessed: SystemTime, modified: SystemTime) -> io::Result<()> {
    File::open(dir)?.set_times(
        FileTimes::new()
            .set_accessed(accessed)
            .set_modified(modified),
    )
}

/// Copies a host directory tree (files, directories, symlinks) to `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), SandboxError> {
    for item in WalkDir::new(from).follow_links(false) {
        let item = item.map_err(|e| SandboxError::io("walk", from, e.into()))?;
        let rel = item.path().strip_prefix(from).unwrap_or(Path::new(""));
        let dest = to.join(rel);
        let ft = item.file_type();
        let copied = if ft.is_dir() {
            std::fs::create_dir(&dest)
        } else if ft.is_symlink() {
            std::fs::read_link(item.path()).and_then(|t| std::os::unix::fs::symlink(t, &dest))
        } else {
            std::fs::copy(item.path(), &dest).map(drop)
        };
        copied.map_err(|e| SandboxError::io("copy", item.path(), e))?;
    }
    Ok(())
}
