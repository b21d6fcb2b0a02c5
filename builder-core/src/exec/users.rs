//! `--chown` and `USER` values → numeric ids, read from the stage's own `/etc/passwd` and
//! `/etc/group`, never the host's.

use super::fs::FsTree;

/// A numeric owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// `0:0`, what COPY gives without `--chown`.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// Why a user or group could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// A name that the stage's database does not have.
    #[error("no {kind} named `{name}` in the image's `{file}`")]
    Unknown {
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
    },
    /// The value is empty or malformed.
    #[error("invalid user `{0}`: expected `user[:group]` with names or numeric ids")]
    Invalid(String),
}

/// Resolves `spec` (`1000`, `app`, `app:staff`, `1000:50`) against `tree`, as BuildKit does for
/// `--chown`: a uid without a group uses the same number as the gid, a user name without a
/// group uses that user's primary group from `/etc/passwd`, and `root` is 0 without a lookup.
/// A name the stage's files do not have is an error, as Docker's reference documents.
pub fn resolve_owner(spec: &str, tree: &FsTree) -> Result<Owner, UserError> {
    resolve(spec, tree, Lookup::Strict)
}

/// Resolves the `USER` that owns the directories `WORKDIR` creates. BuildKit's mkdir does not
/// fail on names the stage's files lack: an unknown user is 0:0 and an unknown group leaves the
/// user's gid, so this never fails on a name, only on a malformed value.
pub fn resolve_owner_lenient(spec: &str, tree: &FsTree) -> Result<Owner, UserError> {
    resolve(spec, tree, Lookup::Lenient)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Strict,
    Lenient,
}

fn resolve(spec: &str, tree: &FsTree, mode: Lookup) -> Result<Owner, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(UserError::Invalid(spec.to_string()));
    }
    let mut owner = match numeric_id(user) {
        Some(n) => Owner { uid: n, gid: n },
        None => match lookup(tree, "/etc/passwd", "user", user) {
            Ok(fields) => Owner {
                uid: fields.0,
                gid: fields.1.unwrap_or(0),
            },
            Err(_) if mode == Lookup::Lenient => Owner::ROOT,
            Err(e) => return Err(e),
        },
    };
    if let Some(g) = group {
        match numeric_id(g) {
            Some(n) => owner.gid = n,
            None => match lookup(tree, "/etc/group", "group", g) {
                Ok(fields) => owner.gid = fields.0,
                Err(_) if mode == Lookup::Lenient => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(owner)
}

/// A numeric id, or `root`, which BuildKit takes as 0 without reading any file.
fn numeric_id(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    s.parse().ok()
}

/// Who a RUN step runs as: ids, supplementary groups and home directory, as runc resolves
/// `USER` against the image's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: the primary group, then those listing the user in `/etc/group`.
    pub groups: Vec<u32>,
    /// `HOME`, from `/etc/passwd` (`/` when the user has no entry).
    pub home: String,
}

/// Resolves the `USER` in effect (`None` = root) for a RUN step. A name must exist in
/// `/etc/passwd`; a numeric uid need not (then its group is 0 and its home `/`), as with runc.
pub fn resolve_run_user(user: Option<&str>, tree: &FsTree) -> Result<RunUser, UserError> {
    let spec = user.unwrap_or("0");
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(UserError::Invalid(spec.to_string()));
    }
    let passwd = tree
        .read_small_file("/etc/passwd")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let entry = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let uid = f.get(2)?.trim().parse::<u32>().ok()?;
            let matches = match user.parse::<u32>() {
                Ok(n) => uid == n,
                Err(_) => f.first() == Some(&user),
            };
            matches.then(|| {
                let gid = f
                    .get(3)
                    .and_then(|g| g.trim().parse::<u32>().ok())
                    .unwrap_or(0);
                let home = f
                    .get(5)
                    .filter(|h| !h.is_empty())
                    .unwrap_or(&"/")
                    .to_string();
                (f[0].to_string(), uid, gid, home)
            })
        });
    let (name, uid, primary, home) = match (entry, user.parse::<u32>()) {
        (Some(e), _) => e,
        (None, Ok(uid)) => (String::new(), uid, 0, "/".to_string()),
        (None, Err(_)) => {
            return Err(UserError::Unknown {
                kind: "user",
                name: user.to_string(),
                file: "/etc/passwd",
            });
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(tree, "/etc/group", "group", g)?.0,
        },
    };
    // The primary group is listed too, as containerd, Docker and buildah do (CVE-2023-25173).
    let mut groups = vec![gid];
    if group.is_none() && !name.is_empty() {
        let db = tree
            .read_small_file("/etc/group")
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        for line in db.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split(':').collect();
            let listed = f
                .get(3)
                .is_some_and(|m| m.split(',').any(|u| u.trim() == name));
            if let (true, Some(id)) = (
                listed,
                f.get(2).and_then(|id| id.trim().parse::<u32>().ok()),
            ) && id != gid
                && !groups.contains(&id)
            {
                groups.push(id);
            }
        }
    }
    Ok(RunUser {
        uid,
        gid,
        groups,
        home,
    })
}

/// Finds `name` in a colon-separated database (field 0 the name, field 2 the id, field 3 the
/// primary group in `/etc/passwd`).
fn lookup(
    tree: &FsTree,
    file: &'static str,
    kind: &'static str,
    name: &str,
) -> Result<(u32, Option<u32>), UserError> {
    let unknown = || UserError::Unknown {
        kind,
        name: name.to_string(),
        file,
    };
    let bytes = tree.read_small_file(file).ok_or_else(unknown)?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&name) {
                return None;
            }
            let id = fields.get(2)?.trim().parse::<u32>().ok()?;
            let group = fields.get(3).and_then(|g| g.trim().parse::<u32>().ok());
            Some((id, group))
        })
        .ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{Content, Entry, EntryKind};
    use std::sync::Arc;

    fn tree() -> FsTree {
        let f = |path: &str, body: &str| Entry {
            path: path.into(),
            kind: EntryKind::File(Content::Bytes(Arc::from(body.as_bytes()))),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Default::default(),
        };
        let mut t = FsTree::new();
        t.apply(&[
            Entry::dir("etc", 0o755, 0, 0, 0),
            f(
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            ),
            f("etc/group", "root:x:0:\nstaff:x:50:app,other\n"),
        ]);
        t
    }

    #[test]
    fn run_users_resolve_as_runc_does() {
        let t = tree();
        let root = resolve_run_user(None, &t).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let app = resolve_run_user(Some("app"), &t).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1001, "/home/app")
        );
        assert_eq!(
            app.groups,
            [1001, 50],
            "the primary group, then those listing the user"
        );
        assert_eq!(root.groups, [0]);
        let num = resolve_run_user(Some("4242"), &t).unwrap();
        assert_eq!((num.uid, num.gid, num.home.as_str()), (4242, 0, "/"));
        let both = resolve_run_user(Some("app:staff"), &t).unwrap();
        assert_eq!((both.uid, both.gid), (1000, 50));
        let e = resolve_run_user(Some("ghost"), &t).unwrap_err().to_string();
        assert_eq!(e, "no user named `ghost` in the image's `/etc/passwd`");
    }

    #[test]
    fn names_and_numbers() {
        let t = tree();
        assert_eq!(
            resolve_owner("app", &t).unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(resolve_owner("root", &FsTree::new()).unwrap(), Owner::ROOT);
        assert_eq!(
            resolve_owner_lenient("ghost:staff", &t).unwrap(),
            Owner { uid: 0, gid: 50 }
        );
        assert_eq!(
            resolve_owner("app:staff", &t).unwrap(),
            Owner { uid: 1000, gid: 50 }
        );
        assert_eq!(
            resolve_owner("10:11", &t).unwrap(),
            Owner { uid: 10, gid: 11 }
        );
        assert_eq!(resolve_owner("1", &t).unwrap(), Owner { uid: 1, gid: 1 });
        let e = resolve_owner("nobody", &t).unwrap_err().to_string();
        assert_eq!(e, "no user named `nobody` in the image's `/etc/passwd`");
        let e = resolve_owner("app:wheel", &FsTree::new())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no user named `app` in the image's `/etc/passwd`");
        assert!(resolve_owner(":1", &t).is_err());
    }
}
