//! A seccomp filter that makes `execve`/`execveat` fail with EPERM.
//!
//! Why: the http worker faces the network, and the scheduler and probe workers
//! talk to the collector and PostgreSQL; none of them ever needs to start a
//! program. Only the pg_ctl worker runs commands. With this filter a code
//! execution bug in a worker that faces the network still cannot run `pg_ctl`
//! (or a shell): the kernel refuses, whatever the worker's uid may do. The
//! workers already run with NO_NEW_PRIVS, which seccomp requires.
//!
//! On x86-64 the filter also refuses every x32 system call (numbers with bit
//! 30 set): they carry the same audit architecture as native calls, so a
//! filter matching `execve` by number alone would let the x32 `execve`
//! through. The agent never makes an x32 call.

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum NoExecError {
    /// The CPU architecture has no seccomp support in seccompiler.
    #[error("seccomp: unsupported architecture {0}")]
    Arch(&'static str),
    /// Building or loading the filter failed.
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccompiler::Error),
    /// Building the filter failed.
    #[error("seccomp filter: {0}")]
    Backend(#[from] seccompiler::BackendError),
}

fn program() -> Result<BpfProgram, NoExecError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| NoExecError::Arch(std::env::consts::ARCH))?;
    let rules = BTreeMap::from([(libc::SYS_execve, vec![]), (libc::SYS_execveat, vec![])]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let program: BpfProgram = filter.try_into()?;
    Ok(refuse_x32(program))
}

/// `__X32_SYSCALL_BIT`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Puts an "any x32 call → EPERM" test in front of `program` on x86-64.
fn refuse_x32(program: BpfProgram) -> BpfProgram {
    if std::env::consts::ARCH != "x86_64" {
        return program;
    }
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JGE_K: u16 = 0x35;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let mut out = vec![
        // A = seccomp_data.nr (offset 0)
        ins(BPF_LD_W_ABS, 0, 0, 0),
        // if A >= X32 bit: next instruction, else skip it
        ins(BPF_JMP_JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    out.extend(program);
    out
}

/// Forbids program execution to every thread of this process, for good.
pub fn forbid_exec() -> Result<(), NoExecError> {
    let prog = program()?;
    seccompiler::apply_filter_all_threads(&prog)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filtered_process_cannot_run_programs() {
        use std::os::unix::process::CommandExt;
        let prog = program().unwrap();
        let mut cmd = std::process::Command::new("/bin/true");
        // SAFETY: between fork and exec the child only makes two system
        // calls on data built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                seccompiler::apply_filter(&prog).map_err(std::io::Error::other)
            });
        }
        // The child's own exec of /bin/true is refused by the filter.
        let err = cmd.status().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        // The x32 execve (520 | x32 bit) is refused too, not run (x32
        // kernels) nor ENOSYS (others): the filter stops it first.
        #[cfg(target_arch = "x86_64")]
        {
            let prog = program().unwrap();
            let mut cmd = std::process::Command::new("/bin/true");
            // SAFETY: as above; the x32 call is made with null arguments,
            // which the filter refuses before the kernel reads them.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    seccompiler::apply_filter(&prog).map_err(std::io::Error::other)?;
                    let nr = (X32_SYSCALL_BIT | 520) as libc::c_long;
                    let r = libc::syscall(nr, 0usize, 0usize, 0usize);
                    if r == -1 && *libc::__errno_location() == libc::EPERM {
                        // Refused as it should: report it through exec's error.
                        return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
                    }
                    Err(std::io::Error::last_os_error())
                });
            }
            let err = cmd.status().unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EXDEV), "x32 execve: {err}");
        }
        // The test process itself is untouched.
        assert!(std::process::Command::new("/bin/true")
            .status()
            .unwrap()
            .success());
    }
}
