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
