//! Who a job's process runs as: a job's `user` (and `group`) resolved on this
//! machine into the numbers its child switches to before `exec`, like
//! `runuser -u USER` or systemd's `User=`: the user's uid, the user's primary
//! group (or the `group` given) and the user's supplementary groups
//! (`getgrouplist`), plus the `HOME`, `USER`, `LOGNAME` and `SHELL` of that user.
//!
//! Name lookups (NSS: files, LDAP, sssd…) allocate, take locks and may talk to
//! a server, so they can never run in the vfork child: they run here, in the
//! parent, once per job when the schema is loaded, and the result is kept
//! ([`RunAs`]) so a spawn only copies numbers.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid, getgrouplist};

/// The credentials a job's process switches to before its `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name, as the user database spells it.
    pub user: String,
    /// Real, effective and saved user id.
    pub uid: u32,
    /// Real, effective and saved group id.
    pub gid: u32,
    /// Supplementary groups (`getgrouplist` of the user, with `gid`).
    pub groups: Vec<u32>,
    /// The user's home directory (`HOME`).
    pub home: PathBuf,
    /// The user's login shell (`SHELL`).
    pub shell: PathBuf,
}

impl RunAs {
    /// `HOME`, `USER`, `LOGNAME` and `SHELL` of the user, as `runuser` and
    /// systemd set them.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.home.to_string_lossy().into_owned()),
            ("USER".into(), self.user.clone()),
            ("LOGNAME".into(), self.user.clone()),
            ("SHELL".into(), self.shell.to_string_lossy().into_owned()),
        ]
    }

    /// `user nobody (uid 65534)`, for messages.
    pub fn describe(&self) -> String {
        format!("user {} (uid {})", self.user, self.uid)
    }
}

/// Why a job's `user` or `group` cannot be used on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No such user in the user database.
    #[error("no user {0:?} on this machine")]
    UnknownUser(String),
    /// No such group in the group database.
    #[error("no group {0:?} on this machine")]
    UnknownGroup(String),
    /// jobslot is not root and the user is not its own.
    #[error(
        "running jobs as user {wanted:?} needs jobslot to run as root; it runs as uid {current}"
    )]
    UserNeedsRoot {
        /// The user asked for.
        wanted: String,
        /// jobslot's effective uid.
        current: u32,
    },
    /// jobslot is not root and the group is not its own.
    #[error(
        "running jobs with group {wanted:?} needs jobslot to run as root; it runs with gid {current}"
    )]
    GroupNeedsRoot {
        /// The group asked for.
        wanted: String,
        /// jobslot's effective gid.
        current: u32,
    },
    /// The user or group database could not be read.
    #[error("cannot look up {what} {name:?}: {error}")]
    Lookup {
        /// `user` or `group`.
        what: &'static str,
        /// The name or id looked up.
        name: String,
        /// The system's error text.
        error: String,
    },
}

impl IdentityError {
    /// Whether the error is about the `group` key (else the `user` key).
    pub fn is_about_group(&self) -> bool {
        matches!(
            self,
            Self::UnknownGroup(_)
                | Self::GroupNeedsRoot { .. }
                | Self::Lookup { what: "group", .. }
        )
    }
}

/// Resolves a job's `user` and optional `group` on this machine. A name made
/// of digits only is a numeric id, which must exist in the database too.
///
/// `Ok(None)`: nothing to switch. That is the case when jobslot is not root
/// and `user` (and `group`, if given) is the user (group) it already runs as;
/// any other user or group needs root ([`IdentityError::UserNeedsRoot`]).
pub fn resolve(user: &str, group: Option<&str>) -> Result<Option<RunAs>, IdentityError> {
    let found = lookup_user(user)?.ok_or_else(|| IdentityError::UnknownUser(user.to_string()))?;
    let gid = match group {
        None => found.gid,
        Some(g) => {
            lookup_group(g)?
                .ok_or_else(|| IdentityError::UnknownGroup(g.to_string()))?
                .gid
        }
    };
    let (euid, egid) = (geteuid(), getegid());
    if !euid.is_root() {
        if found.uid != euid {
            return Err(IdentityError::UserNeedsRoot {
                wanted: user.to_string(),
                current: euid.as_raw(),
            });
        }
        if let Some(g) = group.filter(|_| gid != egid) {
            return Err(IdentityError::GroupNeedsRoot {
                wanted: g.to_string(),
                current: egid.as_raw(),
            });
        }
        return Ok(None);
    }
    let lookup_error = |e: nix::Error| IdentityError::Lookup {
        what: "user",
        name: user.to_string(),
        error: format!("getgrouplist: {e}"),
    };
    let name = CString::new(found.name.as_bytes()).map_err(|_| IdentityError::Lookup {
        what: "user",
        name: user.to_string(),
        error: "the name holds a NUL byte".into(),
    })?;
    let mut groups: Vec<u32> = getgrouplist(&name, gid)
        .map_err(lookup_error)?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(Some(RunAs {
        user: found.name,
        uid: found.uid.as_raw(),
        gid: gid.as_raw(),
        groups,
        home: found.dir,
        shell: found.shell,
    }))
}

fn lookup_user(user: &str) -> Result<Option<User>, IdentityError> {
    let found = match numeric(user) {
        Some(id) => User::from_uid(Uid::from_raw(id)),
        None => User::from_name(user),
    };
    found.map_err(|e| IdentityError::Lookup {
        what: "user",
        name: user.to_string(),
        error: e.to_string(),
    })
}

fn lookup_group(group: &str) -> Result<Option<Group>, IdentityError> {
    let found = match numeric(group) {
        Some(id) => Group::from_gid(Gid::from_raw(id)),
        None => Group::from_name(group),
    };
    found.map_err(|e| IdentityError::Lookup {
        what: "group",
        name: group.to_string(),
        error: e.to_string(),
    })
}

/// `Some(id)` when `name` is all digits.
fn numeric(name: &str) -> Option<u32> {
    if name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_reported_as_such() {
        assert_eq!(
            resolve("no-such-user-xyz", None),
            Err(IdentityError::UnknownUser("no-such-user-xyz".into()))
        );
        let me = User::from_uid(geteuid())
            .expect("lookup")
            .expect("the test's user exists");
        let e = resolve(&me.name, Some("no-such-group-xyz")).expect_err("no such group");
        assert!(e.is_about_group(), "{e}");
    }

    #[test]
    fn our_own_user_needs_no_switch_unless_root() {
        let me = User::from_uid(geteuid())
            .expect("lookup")
            .expect("the test's user exists");
        let got = resolve(&me.uid.as_raw().to_string(), None).expect("resolves");
        if geteuid().is_root() {
            let run_as = got.expect("root switches");
            assert_eq!((run_as.uid, run_as.gid), (0, 0));
            assert!(run_as.groups.contains(&0));
            assert_eq!(run_as.env()[0].0, "HOME");
        } else {
            assert_eq!(got, None);
        }
    }

    #[test]
    fn nobody_gets_its_own_ids_and_groups_as_root() {
        if !geteuid().is_root() {
            let e = resolve("nobody", None).expect_err("needs root");
            assert!(matches!(e, IdentityError::UserNeedsRoot { .. }), "{e}");
            return;
        }
        let Some(nobody) = User::from_name("nobody").expect("lookup") else {
            return;
        };
        let run_as = resolve("nobody", None)
            .expect("resolves")
            .expect("a switch");
        assert_eq!(run_as.uid, nobody.uid.as_raw());
        assert_eq!(run_as.gid, nobody.gid.as_raw());
        assert!(run_as.groups.contains(&run_as.gid));
        let root = resolve("nobody", Some("0"))
            .expect("resolves")
            .expect("switch");
        assert_eq!(root.gid, 0, "a numeric group is a gid");
    }
}
