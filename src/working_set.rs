//! Gives back the page mappings a process only needed to start.
//!
//! Start-up runs code that never runs again (configuration, TLS and SQLite
//! set-up, migrations). The kernel maps program pages 64 KiB at a time around
//! each one touched, and keeps them mapped in the process for its whole
//! life, so every one of our five processes shows 3 to 5 MiB of program
//! and libc pages as its RSS, mostly start-up code. Those pages are clean
//! copies of files in the page cache: unmapping them costs nothing but a
//! minor fault if the code runs again, and what stays mapped is the code
//! the process really uses. Pages a process wrote (relocations, data) are
//! anonymous and are never touched here.

use std::fs;

/// Unmaps the clean, read-only, file-backed pages of this process (program,
/// libraries) and returns how many KiB were mapped. Mappings holding any
/// anonymous (written) page are left alone, so nothing is ever lost: the
/// pages stay in the page cache and fault back in on the next use.
pub fn release_clean_file_pages() -> u64 {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    for vma in parse(&smaps) {
        if !vma.releasable() {
            continue;
        }
        // SAFETY: the range is a whole mapping of this process, read-only
        // and file-backed with no anonymous page: MADV_DONTNEED only drops
        // page-table entries, and the next access reads the same bytes from
        // the page cache. The kernel itself drops such pages whenever memory
        // is short, so this adds no case it does not already have (a file
        // overwritten in place would break the process either way; package
        // upgrades replace files by rename, and then the old mapping shows
        // as "(deleted)" and is skipped).
        let rc = unsafe {
            libc::madvise(
                vma.start as *mut libc::c_void,
                vma.end - vma.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released += vma.rss_kib;
        }
    }
    released
}

/// One mapping of /proc/self/smaps, with what deciding needs.
#[derive(Debug, PartialEq)]
struct Vma {
    start: usize,
    end: usize,
    perms: String,
    path: String,
    rss_kib: u64,
    anonymous_kib: u64,
    locked_kib: u64,
}

impl Vma {
    fn releasable(&self) -> bool {
        self.path.starts_with('/')
            && !self.path.ends_with(" (deleted)")
            && self.perms.starts_with('r')
            && !self.perms.contains('w')
            && self.perms.ends_with('p')
            && self.anonymous_kib == 0
            && self.locked_kib == 0
            && self.rss_kib > 0
    }
}

fn parse(smaps: &str) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = words.next().unwrap_or("").to_string();
                // offset, device, inode, then the path (may hold spaces).
                let path = words.skip(3).collect::<Vec<_>>().join(" ");
                out.push(Vma {
                    start,
                    end,
                    perms,
                    path,
                    rss_kib: 0,
                    // Unknown until read: a mapping whose fields are
                    // missing is never released.
                    anonymous_kib: u64::MAX,
                    locked_kib: u64::MAX,
                });
                continue;
            }
        }
        let Some(vma) = out.last_mut() else { continue };
        let value = || words.clone().next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => vma.rss_kib = value().unwrap_or(0),
            "Anonymous:" => vma.anonymous_kib = value().unwrap_or(u64::MAX),
            "Locked:" => vma.locked_kib = value().unwrap_or(u64::MAX),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0a00000-55d0c0b00000 r--p 00000000 fe:00 123 /usr/bin/temboard-agent
Rss:                 924 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c0b00000-55d0c0c00000 r-xp 00100000 fe:00 123 /usr/bin/temboard-agent
Rss:                2760 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c0c00000-55d0c0c10000 r--p 00200000 fe:00 123 /usr/bin/temboard-agent
Rss:                  64 kB
Anonymous:            64 kB
Locked:                0 kB
55d0c0c10000-55d0c0c20000 rw-p 00210000 fe:00 123 /usr/bin/temboard-agent
Rss:                  20 kB
Anonymous:            20 kB
Locked:                0 kB
7f0000000000-7f0000010000 rw-s 00000000 fe:00 9 /var/lib/temboard-agent/agent.db-shm
Rss:                  32 kB
Anonymous:             0 kB
Locked:                0 kB
7f0000020000-7f0000030000 r-xp 00000000 fe:00 7 /opt/with space/lib.so
Rss:                   8 kB
Anonymous:             0 kB
Locked:                0 kB
7f0000030000-7f0000040000 r-xp 00000000 00:00 0 [vdso]
Rss:                   4 kB
Anonymous:             0 kB
Locked:                0 kB
7f0000040000-7f0000050000 r-xp 00000000 fe:00 8 /usr/lib/locked.so
Rss:                   4 kB
Anonymous:             0 kB
Locked:                4 kB
7f0000050000-7f0000060000 r-xp 00000000 fe:00 8 /usr/lib/cut.so
Rss:                   4 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_released() {
        let vmas = parse(SMAPS);
        assert_eq!(vmas.len(), 9);
        assert_eq!(vmas[5].path, "/opt/with space/lib.so");
        let released: Vec<_> = vmas
            .iter()
            .filter(|v| v.releasable())
            .map(|v| (v.start, v.rss_kib))
            .collect();
        // Program text and rodata and the library with a space in its path;
        // not the relocated (anonymous) part, not writable or shared
        // mappings, not the vdso, not a locked mapping, not a mapping whose
        // fields are missing.
        assert_eq!(
            released,
            vec![
                (0x55d0c0a00000, 924),
                (0x55d0c0b00000, 2760),
                (0x7f0000020000, 8)
            ]
        );
    }

    #[test]
    fn this_process_keeps_running_after_releasing() {
        let released = release_clean_file_pages();
        assert!(released > 0, "a running test maps some program pages");
        // Code and read-only data fault back in: running more of the
        // program (reading and parsing smaps again) is the proof.
        let again = parse(&fs::read_to_string("/proc/self/smaps").unwrap());
        assert!(again
            .iter()
            .any(|v| v.path.starts_with('/') && v.perms == "r-xp"));
    }
}
