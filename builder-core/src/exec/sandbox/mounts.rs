//! The mounts the `init` stage makes inside its private mount namespace: the overlay, a fresh
//! `/proc`, a minimal `/dev`, `/sys` when the image has it, and the bind mounts. They all vanish
//! with the namespace when the step's last process exits, so nothing needs unmounting on the
//! host, even after a crash.

use std::fs::File;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, StatVfsMountFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use super::helper::failed;
use super::protocol::{Failure, HelperPlan, OverlayPlan, STUBS_FILE, Stubs};
use super::resolve::Root;

/// Device nodes bind-mounted from the host into the new `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Mounts the overlay at `overlay.merged`: lower dirs top first, with `userxattr` when rootless
/// (overlayfs in a user namespace cannot use `trusted.*`). The new mount API takes any number
/// of lower dirs (`lowerdir+`, Linux 6.8); older kernels get the one-string form.
pub(crate) fn mount_overlay(overlay: &OverlayPlan, rootless: bool) -> Result<(), Failure> {
    let action = || format!("mount overlay on `{}`", overlay.merged.display());
    match mount_overlay_fsconfig(overlay, rootless) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            let data = overlay_options(overlay, rootless).map_err(|e| failed(action(), e))?;
            rustix::mount::mount(
                "overlay",
                &overlay.merged,
                "overlay",
                MountFlags::empty(),
                data.as_c_str(),
            )
            .map_err(|e| failed(action(), e))
        }
        Err(e) => Err(failed(action(), e)),
    }
}

fn mount_overlay_fsconfig(overlay: &OverlayPlan, rootless: bool) -> rustix::io::Result<()> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for lower in &overlay.lowers_top_first {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower)?;
    }
    rustix::mount::fsconfig_set_string(&fs, "upperdir", &overlay.upper)?;
    rustix::mount::fsconfig_set_string(&fs, "workdir", &overlay.work)?;
    if rootless {
        rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        &overlay.merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// `lowerdir=a:b,upperdir=…,workdir=…` with `:`, `,` and `\` escaped.
fn overlay_options(overlay: &OverlayPlan, rootless: bool) -> io::Result<std::ffi::CString> {
    let esc = |p: &Path| -> io::Result<String> {
        let s = p.to_str().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "overlay path is not UTF-8")
        })?;
        Ok(s.replace('\\', "\\\\")
            .replace(':', "\\:")
            .replace(',', "\\,"))
    };
    let lowers: Vec<String> = overlay
        .lowers_top_first
        .iter()
        .map(|p| esc(p))
        .collect::<io::Result<_>>()?;
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        esc(&overlay.upper)?,
        esc(&overlay.work)?
    );
    if rootless {
        data.push_str(",userxattr");
    }
    std::ffi::CString::new(data).map_err(io::Error::other)
}

/// Mounts everything the command sees and records the mount targets created in the overlay.
pub(crate) fn prepare_root(plan: &HelperPlan, overlay: &OverlayPlan) -> Result<(), Failure> {
    mount_overlay(overlay, plan.rootless)?;
    let root = Root::open(&overlay.merged)
        .map_err(|e| failed(format!("open `{}`", overlay.merged.display()), e))?;
    let mut stubs = Stubs::default();
    let result = mount_specials(plan, &root, &mut stubs);
    // The parent needs the stubs even when a later mount failed, to clean the upper dir.
    let written = std::fs::write(
        plan.report_dir.join(STUBS_FILE),
        serde_json::to_vec(&stubs).unwrap_or_default(),
    );
    result?;
    written.map_err(|e| failed(format!("write `{STUBS_FILE}`"), e))?;
    if !plan.hostname.is_empty() {
        // The sysctl file belongs to the host's root, so a rootless helper (root only in its
        // own user namespace) keeps the host's name rather than failing the step.
        match std::fs::write("/proc/sys/kernel/hostname", &plan.hostname) {
            Err(e) if !(plan.rootless && e.kind() == std::io::ErrorKind::PermissionDenied) => {
                return Err(failed("set the hostname", e));
            }
            _ => {}
        }
    }
    Ok(())
}

fn target(root: &Root, path: &str, dir: bool, stubs: &mut Stubs) -> Result<PathBuf, Failure> {
    root.resolve_creating(path, dir, stubs)
        .map_err(|e| failed(format!("create the mount target `{path}`"), e))
}

fn mount_specials(plan: &HelperPlan, root: &Root, stubs: &mut Stubs) -> Result<(), Failure> {
    let proc = target(root, "/proc", true, stubs)?;
    let nodev = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount("proc", &proc, "proc", nodev, None)
        .map_err(|e| failed(format!("mount proc on `{}`", proc.display()), e))?;

    let dev = target(root, "/dev", true, stubs)?;
    mount_dev(&dev)?;

    if root.host.join("sys").is_dir() {
        mount_sys(&root.host.join("sys"));
    }

    for bind in &plan.binds {
        let source_is_dir = bind.source.is_dir();
        let at = target(root, &bind.target, source_is_dir, stubs)?;
        let action = || {
            format!(
                "bind-mount `{}` on `{}`",
                bind.source.display(),
                bind.target
            )
        };
        rustix::mount::mount_bind_recursive(&bind.source, &at).map_err(|e| failed(action(), e))?;
        if bind.read_only {
            remount_read_only(&bind.source, &at).map_err(|e| failed(action(), e))?;
        }
    }
    Ok(())
}

/// A tmpfs with the usual device nodes bind-mounted from the host (mknod is not allowed in a
/// user namespace), a private devpts, `/dev/shm` and the standard symlinks.
fn mount_dev(dev: &Path) -> Result<(), Failure> {
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    rustix::mount::mount("tmpfs", dev, "tmpfs", flags, c"mode=755,size=65536k")
        .map_err(|e| failed(format!("mount tmpfs on `{}`", dev.display()), e))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let node = dev.join(name);
        File::create(&node).map_err(|e| failed(format!("create `{}`", node.display()), e))?;
        rustix::mount::mount_bind(&host, &node)
            .map_err(|e| failed(format!("bind-mount `{}`", host.display()), e))?;
    }
    let pts = dev.join("pts");
    let shm = dev.join("shm");
    for dir in [&pts, &shm] {
        rustix::fs::mkdir(dir, Mode::from_raw_mode(0o755))
            .map_err(|e| failed(format!("create `{}`", dir.display()), e))?;
    }
    // Optional extras: a failure leaves the directory empty rather than failing the step.
    let _ = rustix::mount::mount(
        "devpts",
        &pts,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"newinstance,ptmxmode=0666,mode=0620",
    );
    let _ = rustix::mount::mount(
        "shm",
        &shm,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"mode=1777,size=65536k",
    );
    let links = [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, to) in links {
        symlink(to, dev.join(name))
            .map_err(|e| failed(format!("create `{}`", dev.join(name).display()), e))?;
    }
    Ok(())
}

/// A read-only sysfs when the image has `/sys`; best effort (a rootless sandbox sharing the
/// host network namespace may not mount sysfs, and then falls back to the host's, read-only).
fn mount_sys(sys: &Path) {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY;
    if rustix::mount::mount("sysfs", sys, "sysfs", flags, None).is_ok() {
        return;
    }
    if rustix::mount::mount_bind_recursive("/sys", sys).is_ok() {
        let _ = remount_read_only(Path::new("/sys"), sys);
    }
}

/// Makes a bind mount read-only, keeping the flags the source mount has (a user namespace may
/// not clear `nosuid`/`nodev`/`noexec` inherited from the host).
fn remount_read_only(source: &Path, at: &Path) -> rustix::io::Result<()> {
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    let locked = rustix::fs::statvfs(source)?.f_flag;
    for (vfs, mount) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if locked.contains(vfs) {
            flags |= mount;
        }
    }
    rustix::mount::mount_remount(at, flags, "")
}

/// Makes `merged` the root: `pivot_root(".", ".")` stacks the old root on the new one, and a
/// lazy unmount drops it, with no directory needed for it in the image. Falls back to `chroot`
/// where `pivot_root` is refused.
pub(crate) fn pivot_into(merged: &Path) -> Result<(), Failure> {
    rustix::process::chdir(merged)
        .map_err(|e| failed(format!("change directory to `{}`", merged.display()), e))?;
    if rustix::process::pivot_root(".", ".").is_ok() {
        rustix::mount::unmount(".", UnmountFlags::DETACH)
            .map_err(|e| failed("detach the old root", e))?;
    } else {
        // pivot_root refuses some roots (an initramfs); the mount namespace is private and
        // dies with the step, so a chroot keeps the command just as contained from the files.
        rustix::process::chroot(".").map_err(|e| failed("chroot into the overlay", e))?;
    }
    rustix::process::chdir("/").map_err(|e| failed("change directory to `/`", e))
}
