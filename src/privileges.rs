//! Which OS identity the workers run under, decided once per configuration.
//!
//! Our rule (documented in docs/configuration.md): when the agent is started as
//! root, every worker is switched to `[temboard] user` if set, else to the owner
//! of `[temboard] home` (the directory the 2.x setup script hands to the
//! PostgreSQL owner). Running workers as root is refused. When started as an
//! ordinary user, workers keep that user.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid, User};
use serde::{Deserialize, Serialize};

/// The identity workers take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User name (for `/status` and logs).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Whether the supervisor must switch to it (it runs as root).
    pub switch: bool,
}

/// Resolves the worker identity and checks that it can write `home`.
pub fn worker_identity(user: Option<&str>, home: &Path) -> Result<Identity, String> {
    let me = Uid::effective();
    if !me.is_root() {
        let name = User::from_uid(me)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| me.to_string());
        if let Some(wanted) = user {
            if wanted != name {
                return Err(format!(
                    "workers can only switch to user '{wanted}' when the agent starts as root (it runs as '{name}')"
                ));
            }
        }
        nix::unistd::access(
            home,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .map_err(|e| {
            format!(
                "directory {} is not writable by user '{name}': {e}",
                home.display()
            )
        })?;
        return Ok(Identity {
            name,
            uid: me.as_raw(),
            gid: Gid::effective().as_raw(),
            switch: false,
        });
    }
    let meta = std::fs::metadata(home).map_err(|e| format!("{}: {e}", home.display()))?;
    let found = match user {
        Some(name) => User::from_name(name)
            .map_err(|e| format!("cannot look up user '{name}': {e}"))?
            .ok_or_else(|| format!("no such OS user '{name}'"))?,
        None => User::from_uid(Uid::from_raw(meta.uid()))
            .map_err(|e| format!("cannot look up owner of {}: {e}", home.display()))?
            .ok_or_else(|| {
                format!(
                    "owner uid {} of {} has no user entry",
                    meta.uid(),
                    home.display()
                )
            })?,
    };
    if found.uid.is_root() {
        return Err(format!(
            "refusing to run workers as root: chown {} to the PostgreSQL owner (e.g. postgres) or set [temboard] user",
            home.display()
        ));
    }
    let mode = meta.mode();
    let writable = (meta.uid() == found.uid.as_raw() && mode & 0o300 == 0o300)
        || (meta.gid() == found.gid.as_raw() && mode & 0o030 == 0o030)
        || mode & 0o003 == 0o003;
    if !writable {
        return Err(format!(
            "directory {} is not writable by user '{}'",
            home.display(),
            found.name
        ));
    }
    Ok(Identity {
        name: found.name,
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        switch: true,
    })
}

/// Makes this process non-dumpable: no core file, and `/proc/<pid>/mem`,
/// `environ` and ptrace are closed to other processes of the same uid.
/// Lasts until the next exec, so each process calls it after its own.
pub fn forbid_dumping() {
    // SAFETY: PR_SET_DUMPABLE takes an integer and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        tracing::warn!(
            "cannot make this process non-dumpable: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// While alive, this thread's file-system identity is the workers' user.
///
/// Why: the supervisor may run as root while the worker user owns the home.
/// Every path it opens, creates or binds inside a directory that user can
/// write (the home, its `run/`, a log directory) is resolved by the kernel
/// with that user's rights, so a link planted there can lead the supervisor
/// nowhere the worker user could not go itself. `setfsuid`/`setfsgid` are
/// per thread and leave the other capabilities alone (the supervisor is
/// single-threaded); supplementary groups are narrowed too, else root's
/// groups would still grant group access.
pub struct ActingAs {
    restore: Option<(u32, u32, Vec<Gid>)>,
}

impl ActingAs {
    /// Takes the worker identity for file-system checks (no-op when the
    /// supervisor does not switch users).
    pub fn worker(identity: &Identity) -> Result<ActingAs, String> {
        if !identity.switch {
            return Ok(ActingAs { restore: None });
        }
        let groups = nix::unistd::getgroups().map_err(|e| format!("getgroups: {e}"))?;
        nix::unistd::setgroups(&[Gid::from_raw(identity.gid)])
            .map_err(|e| format!("setgroups: {e}"))?;
        let old_gid = nix::unistd::setfsgid(Gid::from_raw(identity.gid)).as_raw();
        let old_uid = nix::unistd::setfsuid(Uid::from_raw(identity.uid)).as_raw();
        let guard = ActingAs {
            restore: Some((old_uid, old_gid, groups)),
        };
        // setfsuid reports no error: a second call returns the value now in
        // force, which must be the one asked for.
        let now = nix::unistd::setfsuid(Uid::from_raw(identity.uid)).as_raw();
        if now != identity.uid {
            return Err(format!(
                "cannot take the file-system identity of user '{}'",
                identity.name
            ));
        }
        Ok(guard)
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        if let Some((uid, gid, groups)) = self.restore.take() {
            nix::unistd::setfsuid(Uid::from_raw(uid));
            nix::unistd::setfsgid(Gid::from_raw(gid));
            if let Err(e) = nix::unistd::setgroups(&groups) {
                tracing::error!("cannot restore supplementary groups: {e}");
            }
        }
    }
}
