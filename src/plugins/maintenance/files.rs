//! Relation sizes read from the data directory (issue #31): what
//! `pg_relation_size` says, without PostgreSQL opening each relation.
//!
//! Why: measured on 10,000 tables, sizing through `pg_*_relation_size`
//! makes PostgreSQL open 40,000 relations (tables, TOAST, indexes), more
//! than 1.3 s of a page; the agent runs on the cluster's host as its OS
//! user, so it lists the directories itself (one `readdir` each, a
//! `stat` a file: about 30 ms for those 40,000 relations).
//!
//! The catalog says where each relation's files are (its tablespace and
//! `pg_relation_filenode`, which reads the relation mapper for mapped
//! catalogs and opens nothing; `pg_relation_filepath` for a temporary
//! relation); a relation's files are `<base>`, `<base>.N` (segments
//! of `RELSEG_SIZE` blocks) and the `_fsm`, `_vm` and `_init` forks, each
//! possibly segmented too. The main fork is what `pg_relation_size(oid)`
//! counts, all forks what `pg_total_relation_size` of an index counts.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The maps of relations by oid and of files by name: foldhash, not the
/// standard SipHash. Why: a 10,000-table schema page looks up 100,000
/// oids; SipHash made that 5 % of the page's time. The keys are oids and
/// file names PostgreSQL chose, and the seed is random all the same.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One relation with storage, as the catalog said at the time of the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Its oid.
    pub oid: u32,
    /// `pg_relation_filenode`: a rewrite (VACUUM FULL, TRUNCATE, CLUSTER,
    /// SET TABLESPACE) gives it a new one, which is how a relation
    /// rewritten during the listing is told apart.
    pub filenode: u32,
    /// Where its files are, relative to the data directory (see
    /// [`relation_path`]; `pg_relation_filepath` for a temporary one).
    pub path: String,
}

/// Bytes of one relation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    /// The main fork (`pg_relation_size(oid)`).
    pub main: i64,
    /// Every fork (main, free space map, visibility map, init).
    pub forks: i64,
}

/// Why the data directory cannot be read: said once in the logs, and the
/// pages measure through SQL instead.
#[derive(Debug)]
pub enum Unreadable {
    /// The role may not see `data_directory` (neither superuser nor
    /// `pg_read_all_settings`) or run `pg_control_system()`.
    Hidden,
    /// The directory there is another cluster's (the agent runs on another
    /// host, or a path is reused): its `global/pg_control` does not hold
    /// the connected cluster's system identifier.
    OtherCluster(String),
    /// Reading failed (permissions, most often).
    Io(String, std::io::Error),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Hidden => write!(
                f,
                "the connected role may not read data_directory (superuser or pg_read_all_settings) \
                 or pg_control_system()"
            ),
            Unreadable::OtherCluster(dir) => write!(
                f,
                "{dir} is not the connected cluster's data directory (its system identifier differs)"
            ),
            Unreadable::Io(path, e) => write!(f, "{path}: {e}"),
        }
    }
}

/// Checks that `datadir` is the cluster whose system identifier is
/// `system_identifier` (the first 8 bytes of `global/pg_control`, in the
/// machine's byte order).
pub fn same_cluster(datadir: &Path, system_identifier: i64) -> Result<(), Unreadable> {
    let path = datadir.join("global/pg_control");
    let mut head = [0u8; 8];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| Unreadable::Io(path.display().to_string(), e))?;
    if i64::from_ne_bytes(head) == system_identifier {
        Ok(())
    } else {
        Err(Unreadable::OtherCluster(datadir.display().to_string()))
    }
}

/// Which relation and fork a file of a directory belongs to: the name
/// without its segment number (`.N`), then either a relation's base name
/// (the main fork) or a base name and a fork suffix.
fn owner(name: &str, bases: &FastMap<&str, usize>) -> Option<(usize, bool)> {
    let stem = match name.rsplit_once('.') {
        Some((stem, seg)) if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) => stem,
        Some(_) => return None,
        None => name,
    };
    if let Some(&i) = bases.get(stem) {
        return Some((i, true));
    }
    let (base, fork) = stem.rsplit_once('_')?;
    if !matches!(fork, "fsm" | "vm" | "init") {
        return None;
    }
    bases.get(base).map(|&i| (i, false))
}

/// Where PostgreSQL keeps the files of relation `filenode` of database
/// `dboid` in tablespace `spc` (the database's default one for 0), relative
/// to the data directory: what `pg_relation_filepath` says of a relation
/// that is not temporary.
pub fn relation_path(db: &Database, spc: u32, filenode: u32) -> String {
    let spc = if spc == 0 { db.tablespace } else { spc };
    match spc {
        GLOBAL_TABLESPACE => format!("global/{filenode}"),
        DEFAULT_TABLESPACE => format!("base/{}/{filenode}", db.oid),
        other => format!(
            "pg_tblspc/{other}/{}/{}/{filenode}",
            db.version_dir, db.oid
        ),
    }
}

/// `pg_global`'s oid.
const GLOBAL_TABLESPACE: u32 = 1664;
/// `pg_default`'s oid.
const DEFAULT_TABLESPACE: u32 = 1663;

/// The database whose relations are measured.
#[derive(Debug, Clone)]
pub struct Database {
    /// Its oid (its directories' name).
    pub oid: u32,
    /// Its default tablespace (`pg_database.dattablespace`).
    pub tablespace: u32,
    /// `PG_<major>_<catalog version>`, the directory of a tablespace this
    /// server uses.
    pub version_dir: String,
}

/// The database's directories, as `pg_database_size` adds them up:
/// `base/<oid>` and `pg_tblspc/<each>/<version_dir>/<oid>`.
pub fn database_dirs(datadir: &Path, db: &Database) -> Result<Vec<String>, Unreadable> {
    let mut dirs = vec![format!("base/{}", db.oid)];
    let tblspc = datadir.join("pg_tblspc");
    let entries = std::fs::read_dir(&tblspc)
        .map_err(|e| Unreadable::Io(tblspc.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Unreadable::Io(tblspc.display().to_string(), e))?;
        if let Some(name) = entry.file_name().to_str() {
            dirs.push(format!("pg_tblspc/{name}/{}/{}", db.version_dir, db.oid));
        }
    }
    Ok(dirs)
}

/// Below this many relations in a directory whose other files do not
/// count, each relation's files are looked up by name (a `stat` per fork
/// and segment, about 5 a relation) rather than the directory listed (a
/// table's page in a database of 10,000 tables: 4 relations, not 40,000
/// entries).
const BY_NAME: usize = 64;

/// Above this many entries to `stat`, the `stat`s are shared among the
/// machine's cores (at most 4 threads): a `stat` costs about a microsecond,
/// 40 ms for a database of 10,000 tables.
const SHARED: usize = 2_000;

/// The sizes of `rels` (same order) from their files under `datadir`, and
/// the bytes of every entry of the directories `whole` (what
/// `pg_database_size` counts): one listing per directory, or a lookup by
/// name for a few relations. A file that vanishes before its `stat` counts
/// nothing (the caller re-checks what was rewritten); a directory that does
/// not exist holds nothing; any other failure is the caller's cue to
/// measure through SQL.
///
/// The directories of `listed` (read by [`list`] beforehand) are not read
/// again: their entries are attributed by name.
pub fn sizes(
    datadir: &Path,
    rels: &[Relation],
    whole: &[String],
    listed: Option<&Listing>,
) -> Result<(Vec<Size>, i64), Unreadable> {
    let mut dirs: HashMap<&str, (FastMap<&str, usize>, bool)> = HashMap::new();
    for (i, r) in rels.iter().enumerate() {
        if let Some((dir, base)) = r.path.rsplit_once('/') {
            dirs.entry(dir).or_default().0.insert(base, i);
        }
    }
    for dir in whole {
        dirs.entry(dir.as_str()).or_default().1 = true;
    }
    let mut out = vec![Size::default(); rels.len()];
    let mut total = 0i64;
    for (dir, (bases, counted)) in dirs {
        if let Some(entries) = listed.and_then(|l| l.dirs.get(dir)) {
            for (name, len) in entries {
                let owned = owner(name, &bases);
                if counted || owned.is_some() {
                    attribute(&mut out, &mut total, owned, *len);
                }
            }
            continue;
        }
        let path = datadir.join(dir);
        if !counted && bases.len() <= BY_NAME {
            for (base, &i) in &bases {
                out[i] = by_name(&path, base)?;
            }
            continue;
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Unreadable::Io(path.display().to_string(), e)),
        };
        let mut wanted = vec![];
        for entry in entries {
            let entry = entry.map_err(|e| Unreadable::Io(path.display().to_string(), e))?;
            let owned = entry.file_name().to_str().and_then(|n| owner(n, &bases));
            if owned.is_some() || counted {
                wanted.push((entry, owned));
            }
        }
        for (owned, len) in stat_all(&wanted).map_err(|e| Unreadable::Io(path.display().to_string(), e))? {
            attribute(&mut out, &mut total, owned, len);
        }
    }
    Ok((out, total))
}

/// Counts a file of `len` bytes in the total and, when it is a relation's
/// (its position, whether of its main fork), in that relation's sizes.
fn attribute(out: &mut [Size], total: &mut i64, owned: Option<(usize, bool)>, len: i64) {
    *total += len;
    if let Some((i, main)) = owned {
        if main {
            out[i].main += len;
        }
        out[i].forks += len;
    }
}

/// Every entry of some directories with its size, read before the
/// catalog says which relation each belongs to.
///
/// Why: the listing of a large database (45,000 files at 10,000 tables,
/// about 50 ms) then runs while PostgreSQL reads the catalog, instead of
/// after it.
#[derive(Debug, Default)]
pub struct Listing {
    /// Directory (relative to the data directory) → its entries' names and
    /// sizes; a directory that does not exist holds nothing.
    dirs: HashMap<String, Vec<(String, i64)>>,
}

/// Lists and `stat`s every entry of `dirs` (relative to `datadir`).
pub fn list(datadir: &Path, dirs: &[String]) -> Result<Listing, Unreadable> {
    let mut listing = Listing::default();
    for dir in dirs {
        let path = datadir.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                listing.dirs.insert(dir.clone(), vec![]);
                continue;
            }
            Err(e) => return Err(Unreadable::Io(path.display().to_string(), e)),
        };
        let mut wanted = vec![];
        for entry in entries {
            let entry = entry.map_err(|e| Unreadable::Io(path.display().to_string(), e))?;
            // A name that is not UTF-8 is no relation's file; it still
            // counts in the database's size.
            let name = entry.file_name().to_string_lossy().into_owned();
            wanted.push((entry, name));
        }
        let sized = stat_all(&wanted).map_err(|e| Unreadable::Io(path.display().to_string(), e))?;
        listing.dirs.insert(dir.clone(), sized);
    }
    Ok(listing)
}

/// The sizes of the entries (a vanished one: none), each with its tag,
/// shared among threads when there are many.
fn stat_all<T: Clone + Send + Sync>(
    wanted: &[(std::fs::DirEntry, T)],
) -> std::io::Result<Vec<(T, i64)>> {
    // `DirEntry::metadata` is an `fstatat` on the directory's descriptor
    // that does not follow a link.
    let one = |chunk: &[(std::fs::DirEntry, T)]| {
        let mut got = Vec::with_capacity(chunk.len());
        for (entry, tag) in chunk {
            match entry.metadata() {
                Ok(m) => got.push((tag.clone(), m.len() as i64)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if wanted.len() < SHARED || threads < 2 {
        return one(wanted);
    }
    let size = wanted.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut handles = vec![];
        for chunk in wanted.chunks(size) {
            // A thread that cannot start: this one does the work.
            match std::thread::Builder::new().spawn_scoped(s, move || one(chunk)) {
                Ok(h) => handles.push(Ok(h)),
                Err(_) => handles.push(Err(chunk)),
            }
        }
        let mut all = Vec::with_capacity(wanted.len());
        for h in handles {
            let part = match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a stat thread failed")))?,
                Err(chunk) => one(chunk)?,
            };
            all.extend(part);
        }
        Ok(all)
    })
}

/// One relation's sizes from its files looked up by name: each fork, each
/// of its segments until one is missing.
fn by_name(dir: &Path, base: &str) -> Result<Size, Unreadable> {
    let mut size = Size::default();
    for fork in ["", "_fsm", "_vm", "_init"] {
        for segment in 0u32.. {
            let name = match segment {
                0 => format!("{base}{fork}"),
                n => format!("{base}{fork}.{n}"),
            };
            let path = dir.join(&name);
            let len = match std::fs::symlink_metadata(&path) {
                Ok(m) => m.len() as i64,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(Unreadable::Io(path.display().to_string(), e)),
            };
            if fork.is_empty() {
                size.main += len;
            }
            size.forks += len;
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(oid: u32, path: &str) -> Relation {
        Relation {
            oid,
            filenode: oid,
            path: path.to_string(),
        }
    }

    #[test]
    fn forks_and_segments_are_counted_for_their_relation() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("base/5");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::create_dir_all(d.path().join("global")).unwrap();
        let write = |name: &str, len: usize| std::fs::write(db.join(name), vec![0u8; len]).unwrap();
        write("100", 8192);
        write("100.1", 100);
        write("100_fsm", 24576);
        write("100_vm", 8192);
        write("100_vm.1", 1);
        write("1000", 16384); // another relation, not a segment of 100
        write("t3_200", 8192); // a temporary relation
        write("t3_200_init", 0);
        write("100_bogus", 7);
        write("100.x", 7);
        write("pg_filenode.map", 512);
        std::fs::write(d.path().join("global/1262"), vec![0u8; 8192]).unwrap();
        let rels = [
            rel(1, "base/5/100"),
            rel(2, "base/5/1000"),
            rel(3, "base/5/t3_200"),
            rel(4, "global/1262"),
            rel(5, "base/6/300"), // a directory that does not exist
        ];
        let whole = ["base/5".to_string()];
        let (got, total) = sizes(d.path(), &rels, &whole, None).unwrap();
        // Listed beforehand (base/6 too: it does not exist), the same.
        let listed = list(d.path(), &["base/5".to_string(), "base/6".to_string()]).unwrap();
        assert_eq!(
            sizes(d.path(), &rels, &whole, Some(&listed)).unwrap(),
            (got.clone(), total)
        );
        // Every entry of base/5, as pg_database_size counts them.
        assert_eq!(total, 8292 + 24576 + 8193 + 16384 + 8192 + 14 + 512);
        assert_eq!(got[0], Size { main: 8292, forks: 8292 + 24576 + 8193 });
        assert_eq!(got[1], Size { main: 16384, forks: 16384 });
        assert_eq!(got[2], Size { main: 8192, forks: 8192 });
        assert_eq!(got[3], Size { main: 8192, forks: 8192 });
        assert_eq!(got[4], Size::default());
        // Looked up by name, the same.
        for (i, r) in rels.iter().enumerate() {
            let (dir, base) = r.path.rsplit_once('/').unwrap();
            assert_eq!(by_name(&d.path().join(dir), base).unwrap(), got[i], "{}", r.path);
        }
    }

    #[test]
    fn many_files_are_measured_by_several_threads_alike() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("base/5");
        std::fs::create_dir_all(&db).unwrap();
        let mut rels = vec![];
        for i in 0..(SHARED as u32 + 500) {
            std::fs::write(db.join(format!("{}", 10_000 + i)), vec![0u8; (i % 7) as usize]).unwrap();
            rels.push(rel(i, &format!("base/5/{}", 10_000 + i)));
        }
        let (got, total) = sizes(d.path(), &rels, &["base/5".to_string()], None).unwrap();
        let listed = list(d.path(), &["base/5".to_string()]).unwrap();
        assert_eq!(
            sizes(d.path(), &rels, &["base/5".to_string()], Some(&listed)).unwrap(),
            (got.clone(), total)
        );
        for (i, s) in got.iter().enumerate() {
            assert_eq!(s.main, (i % 7) as i64);
        }
        assert_eq!(total, got.iter().map(|s| s.forks).sum::<i64>());
    }

    #[test]
    fn another_clusters_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("global")).unwrap();
        let id: i64 = 7_716_529_329_537_286_870;
        let mut control = id.to_ne_bytes().to_vec();
        control.extend([0u8; 100]);
        std::fs::write(d.path().join("global/pg_control"), control).unwrap();
        assert!(same_cluster(d.path(), id).is_ok());
        assert!(matches!(
            same_cluster(d.path(), id + 1),
            Err(Unreadable::OtherCluster(_))
        ));
        assert!(matches!(
            same_cluster(&d.path().join("nowhere"), id),
            Err(Unreadable::Io(..))
        ));
    }
}
