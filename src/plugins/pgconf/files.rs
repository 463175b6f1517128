//! Safe replacement of PostgreSQL's configuration files and pg_hba.conf
//! versions: a temporary file in the same directory, fsync, rename, fsync of
//! the directory, owner and mode kept — so a crash at any instant leaves the
//! old file or the new one, never a truncated one. Version names are checked
//! strictly, so they can never reach outside the file's directory.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writers of this process take turns: two requests replacing the same file
/// at once would otherwise race on rename.
static WRITE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn temp_prefix(name: &str) -> String {
    format!(".{name}.temboard-")
}

/// The temporary file of this process for `name` in `dir`.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}{}.tmp", temp_prefix(name), std::process::id()))
}

/// Creates a temporary file, new and private until it is complete.
fn create_temp(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Replaces `path` with `content` atomically, keeping owner and mode.
///
/// A symbolic link (a `pg_hba.conf` kept elsewhere and linked into the data
/// directory) is written through: its target is replaced, the link stays a
/// link. The worker doing this runs as the PostgreSQL OS user, so a link can
/// lead it nowhere that user could not write anyway.
pub fn atomic_write(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let _turn = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let resolved;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved = std::fs::canonicalize(path)?;
        resolved.as_path()
    } else {
        path
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = std::fs::metadata(path).ok();
    let mode = meta.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(0o600);
    let tmp = temp_path(dir, &name);
    let result = (|| {
        let mut f = create_temp(&tmp)?;
        f.write_all(content)?;
        if let Some(m) = &meta {
            // Only root can give a file away; as the owner this is a no-op.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        // Temporary files left by a writer killed before its rename.
        let prefix = temp_prefix(&name);
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    result
}

/// Copies `from` to `to` (new file, same mode), durably and whole: the copy
/// is written to a temporary file, synced, then linked as `to` (which fails
/// if `to` exists: a version is never overwritten). On any error — a full
/// disk — nothing named `to` appears and the temporary file is removed.
pub fn copy_new(from: &Path, to: &Path) -> std::io::Result<()> {
    let content = std::fs::read(from)?;
    let mode = std::fs::metadata(from)?.mode() & 0o7777;
    let dir = to.parent().unwrap_or_else(|| Path::new("/"));
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = temp_path(dir, &name);
    let result = (|| {
        let mut f = create_temp(&tmp)?;
        f.write_all(&content)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, to)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Checks a version string: exactly `YYYY-MM-DDTHH:MM:SS` (2.x regex, but
/// anchored at both ends) → `Err(false)`; a valid pattern but impossible date
/// → `Err(true)`.
pub fn check_version(v: &str) -> Result<(), bool> {
    let b = v.as_bytes();
    let shape = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return Err(false);
    }
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
        .map(|_| ())
        .map_err(|_| true)
}

/// Path of a version of `file`.
pub fn version_path(file: &Path, version: &str) -> PathBuf {
    let mut name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(version);
    file.with_file_name(name)
}

/// Versions of `file` present beside it, newest first.
pub fn versions(file: &Path) -> std::io::Result<Vec<String>> {
    let dir = file.parent().unwrap_or_else(|| Path::new("/"));
    let prefix = format!(
        "{}.",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .map(str::to_string)
        })
        .filter(|v| check_version(v).is_ok())
        .collect();
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_are_strict() {
        assert_eq!(check_version("2017-03-06T16:34:07"), Ok(()));
        assert_eq!(check_version("2017-02-30T16:34:07"), Err(true));
        for bad in [
            "2017-03-06T16:34:07/../../x",
            "../../etc/passwd",
            "2017-03-06 16:34:07",
            "",
            "2017-03-06T16:34:0",
        ] {
            assert_eq!(check_version(bad), Err(false), "{bad}");
        }
    }

    #[test]
    fn atomic_write_keeps_mode_and_lists_versions() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pg_hba.conf");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        atomic_write(&f, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o640);
        copy_new(&f, &version_path(&f, "2020-01-01T00:00:00")).unwrap();
        copy_new(&f, &version_path(&f, "2021-01-01T00:00:00")).unwrap();
        assert!(
            copy_new(&f, &version_path(&f, "2021-01-01T00:00:00")).is_err(),
            "never overwrites"
        );
        std::fs::write(dir.path().join("pg_hba.conf.bogus"), "").unwrap();
        assert_eq!(
            versions(&f).unwrap(),
            vec!["2021-01-01T00:00:00", "2020-01-01T00:00:00"]
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
