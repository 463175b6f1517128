//! A seccomp filter that makes `execve`/`execveat` fail with EPERM.
//!
//! Why: the http worker faces the network, and the scheduler and probe workers
//! talk to the collector and PostgreSQL; none of them ever needs to start a
//! program. Only the pg_ctl worker runs commands. With this filter a code
//! execution bug in a worker that faces the network still cannot run `pg_ctl`
//! (or a shell): the kernel refuses, whatever the worker's uid may do. The
//! workers already run with NO_NEW_PRIVS, which seccomp requires.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

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
    Ok(filter.try_into()?)
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
        // The test process itself is untouched.
        assert!(std::process::Command::new("/bin/true")
            .status()
            .unwrap()
            .success());
    }
}
