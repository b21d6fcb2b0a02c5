//! Rootless builds with subordinate ids.
//!
//! A user who is not root can still give a RUN step a real range of users: `/etc/subuid` and
//! `/etc/subgid` grant each user a block of host ids, and the setuid helpers `newuidmap` and
//! `newgidmap` (package `uidmap`) write a user namespace's map from them. Inside such a
//! namespace the caller is root over the whole block, so layers unpack with their owners
//! (`chown` to 1000 lands on a subordinate host id), `USER app` runs as a distinct user, and
//! the files a step creates for `app` are captured as owned by 1000.
//!
//! [`enter_user_namespace`] moves the calling process itself into such a namespace, as buildah
//! does at start-up, rather than only each RUN helper: unpacking, reading a step's upper dir
//! (files of mode 0600 owned by `app`) and removing it all need the mapping, not just the step.
//! Without subordinate ids a rootless helper maps only the caller to root (every file then
//! belongs to root in the image), which is what [`Privilege::Unprivileged`] means.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rustix::thread::UnshareFlags;

use super::SandboxError;
use super::helper::{SELF_EXE, unshare};

/// The first argument that turns the program into the id mapper (see
/// [`run_helper_if_requested`](super::run_helper_if_requested)).
pub(crate) const MAP_IDS_ARG: &str = "__kiln-map-ids";

/// What this process may do with ownership, which decides how layers are unpacked, how
/// overlay is mounted and how a step's files map to the image's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Root of the host: `trusted.*` overlay attributes, every id.
    HostRoot,
    /// Root of a user namespace with a map of ids (after [`enter_user_namespace`], or inside a
    /// rootless container): every mapped id, but only `user.*` overlay attributes.
    NamespaceRoot,
    /// Not root: each RUN helper maps the caller alone to root.
    Unprivileged,
}

impl Privilege {
    /// Whether overlay must be mounted with `userxattr` and layers unpacked for it.
    pub fn uses_user_xattr(self) -> bool {
        self != Privilege::HostRoot
    }
}

/// This process's [`Privilege`], read once (after [`enter_user_namespace`], which must run
/// first thing in `main`).
pub fn privilege() -> Privilege {
    static PRIVILEGE: OnceLock<Privilege> = OnceLock::new();
    *PRIVILEGE.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            Privilege::Unprivileged
        } else if std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|map| is_identity_map(&map))
        {
            Privilege::HostRoot
        } else {
            Privilege::NamespaceRoot
        }
    })
}

/// The initial user namespace's map: every id to itself.
fn is_identity_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// A tag naming this process's id mapping when it is root of a user namespace, so that layers
/// unpacked with one mapping (their files owned by its host ids) are never stacked under
/// another. `None` as host root or unprivileged, whose unpacked files are owned the same way
/// every time.
pub fn ownership_tag() -> Option<String> {
    static TAG: OnceLock<Option<String>> = OnceLock::new();
    TAG.get_or_init(|| {
        if privilege() != Privilege::NamespaceRoot {
            return None;
        }
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for file in ["/proc/self/uid_map", "/proc/self/gid_map"] {
            let map = std::fs::read_to_string(file).unwrap_or_default();
            hasher.update(map.split_whitespace().collect::<Vec<_>>().join(" "));
            hasher.update(b"\n");
        }
        let digest = hasher.finalize();
        Some(format!(
            "ns-{}",
            digest[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    })
    .clone()
}

/// One block of subordinate ids: `count` host ids from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The first host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// The map a user namespace gets: the caller's own id to 0, then its subordinate ranges, in
/// file order, to 1, 2, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMapping {
    /// The caller's uid and its subordinate uid ranges.
    pub uid: (u32, Vec<IdRange>),
    /// The caller's gid and its subordinate gid ranges.
    pub gid: (u32, Vec<IdRange>),
}

impl IdMapping {
    /// The caller's ranges from `/etc/subuid` and `/etc/subgid`; `None` when either file
    /// grants it nothing.
    pub fn of_current_user() -> Option<IdMapping> {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let mut owners = vec![uid.to_string()];
        owners.extend(user_name(Path::new("/etc/passwd"), uid));
        let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
        let uids = ranges_for(&read("/etc/subuid"), &owners);
        let gids = ranges_for(&read("/etc/subgid"), &owners);
        if uids.is_empty() || gids.is_empty() {
            return None;
        }
        Some(IdMapping {
            uid: (uid, uids),
            gid: (gid, gids),
        })
    }

    /// `newuidmap`'s (or `newgidmap`'s) arguments after the pid: `inside host count` triples.
    fn map_args(own: u32, ranges: &[IdRange]) -> Vec<String> {
        let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
        let mut inside: u64 = 1;
        for range in ranges {
            args.extend([
                inside.to_string(),
                range.start.to_string(),
                range.count.to_string(),
            ]);
            inside += u64::from(range.count);
        }
        args
    }
}

/// The name `/etc/passwd` gives `uid`.
fn user_name(passwd: &Path, uid: u32) -> Option<String> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid)).then(|| name.to_string())
    })
}

/// The ranges `/etc/subuid`-style `text` grants any of `owners` (a name or a numeric id), in
/// file order; malformed lines are skipped, as `newuidmap` does.
fn ranges_for(text: &str, owners: &[String]) -> Vec<IdRange> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count: u32 = fields.next()?.parse().ok()?;
            (fields.next().is_none() && count > 0 && owners.iter().any(|o| o == owner))
                .then_some(IdRange { start, count })
        })
        .collect()
}

/// Moves this process into a new user namespace where the caller is root over its
/// subordinate ids, and returns the mapping; does nothing (`Ok(None)`) as root, when the user
/// has no subordinate ids, when `newuidmap`/`newgidmap` are not installed, or when
/// `KILN_USERNS=off` is set.
///
/// Must be called first thing in `main`, after
/// [`run_helper_if_requested`](super::run_helper_if_requested) and before any thread is
/// started: the kernel refuses a multi-threaded process a new user namespace. The map is
/// written by `newuidmap` and `newgidmap` from a helper process started before the namespace
/// exists (a setuid program started from inside it would not be privileged).
pub fn enter_user_namespace() -> Result<Option<IdMapping>, SandboxError> {
    if rustix::process::geteuid().is_root()
        || std::env::var_os("KILN_USERNS").is_some_and(|v| v == "off")
    {
        return Ok(None);
    }
    let Some(mapping) = IdMapping::of_current_user() else {
        return Ok(None);
    };
    let (Some(newuidmap), Some(newgidmap)) = (find_program("newuidmap"), find_program("newgidmap"))
    else {
        return Ok(None);
    };
    let helper_err = |action: &'static str| {
        move |source| SandboxError::Helper {
            action,
            program: PathBuf::from(SELF_EXE),
            source,
        }
    };
    let mut mapper = Command::new(SELF_EXE)
        .arg(MAP_IDS_ARG)
        .arg(&newuidmap)
        .arg(IdMapping::map_args(mapping.uid.0, &mapping.uid.1).join(" "))
        .arg(&newgidmap)
        .arg(IdMapping::map_args(mapping.gid.0, &mapping.gid.1).join(" "))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(helper_err("start"))?;
    let unshared = unshare(UnshareFlags::NEWUSER);
    let told = match (&unshared, mapper.stdin.take()) {
        (Ok(()), Some(mut stdin)) => writeln!(stdin, "{}", std::process::id()),
        // Closing stdin without a pid tells the mapper to give up.
        _ => Ok(()),
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = mapper.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = mapper.wait().map_err(helper_err("wait for"))?;
    if let Err(source) = unshared {
        return Err(SandboxError::Setup {
            action: "enter a user namespace (call `enter_user_namespace` before any thread \
                     is started)"
                .into(),
            source,
        });
    }
    told.map_err(helper_err("write to"))?;
    if !status.success() {
        return Err(SandboxError::IdMap {
            message: stderr.trim().to_string(),
        });
    }
    Ok(Some(mapping))
}

/// The mapper: waits for the pid of the process that has just unshared its user namespace,
/// then writes its maps with the given `newuidmap` and `newgidmap`. Exits 0 when both worked.
pub(crate) fn mapper_main(mut args: impl Iterator<Item = OsString>) -> i32 {
    let (Some(newuidmap), Some(uid_map), Some(newgidmap), Some(gid_map)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "id mapper: expected newuidmap, its map, newgidmap and its map"
        );
        return 2;
    };
    let mut pid = String::new();
    if std::io::stdin().read_to_string(&mut pid).is_err() || pid.trim().is_empty() {
        return 1;
    }
    for (program, map) in [(newuidmap, uid_map), (newgidmap, gid_map)] {
        let map = map.to_string_lossy().into_owned();
        let out = Command::new(&program)
            .arg(pid.trim())
            .args(map.split(' '))
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "`{} {} {map}` failed ({}): {}",
                    program.to_string_lossy(),
                    pid.trim(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return 1;
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "cannot run `{}`: {e}",
                    program.to_string_lossy()
                );
                return 1;
            }
        }
    }
    0
}

/// `name` on `PATH`, or in `/usr/bin` (where package `uidmap` puts it).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_found_by_name_or_uid_in_file_order() {
        let text = "other:100000:65536\n\
                    me:200000:65536\n\
                    # a comment\n\
                    1001:300000:1000\n\
                    me:bad:1\n\
                    me:400000:0\n";
        let owners = ["1001".to_string(), "me".to_string()];
        assert_eq!(
            ranges_for(text, &owners),
            vec![
                IdRange {
                    start: 200000,
                    count: 65536
                },
                IdRange {
                    start: 300000,
                    count: 1000
                },
            ]
        );
        assert_eq!(ranges_for(text, &["nobody".to_string()]), vec![]);
    }

    #[test]
    fn the_map_puts_the_caller_at_zero_and_ranges_after_it() {
        let ranges = [
            IdRange {
                start: 200000,
                count: 65536,
            },
            IdRange {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            IdMapping::map_args(1001, &ranges).join(" "),
            "0 1001 1 1 200000 65536 65537 300000 10"
        );
    }

    #[test]
    fn only_the_full_identity_map_is_the_hosts() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("0 1001 1\n1 100000 65536\n"));
        assert!(!is_identity_map("0 0 65536\n"));
    }

    #[test]
    fn user_names_come_from_the_passwd_file() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nme:x:1001:1001::/home/me:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(user_name(&passwd, 1001).as_deref(), Some("me"));
        assert_eq!(user_name(&passwd, 5), None);
    }
}
