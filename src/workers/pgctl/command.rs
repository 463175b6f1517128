//! Running the control command: argv split like a shell would (no shell
//! involved), stdin from /dev/null, output captured and bounded, a timeout
//! that kills the command's whole process group, and no agent descriptor
//! inherited (every fd of the worker is close-on-exec).
//!
//! The output is read until the command exits plus a short grace, not until
//! EOF: a postmaster started without `-l` keeps the pipes open forever.
//!
//! What the command inherits is what a postmaster started by hand would: a
//! clean environment (PATH, locale, time zone, HOME/USER/LOGNAME of the
//! worker user — nothing of the agent's), the open-files soft limit the
//! agent was started with (not the one it raised for its own connections),
//! and descriptors 0–2 only.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    /// stdout then stderr interleaved as read, at most the limit.
    pub output: String,
    /// Whether the timeout killed it.
    pub timed_out: bool,
}

/// Builds argv from the `[administration] pg_ctl` template (`%s` = action).
pub fn argv(template: &str, action: &str) -> Result<Vec<String>, String> {
    let line = template.replace("%s", action);
    let words = shlex::split(&line).ok_or_else(|| {
        format!("cannot split the pg_ctl command: unbalanced quotes in {template:?}")
    })?;
    if words.is_empty() {
        return Err("the pg_ctl command is empty".into());
    }
    Ok(words)
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own; only flag bits change.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Variables passed from the worker's environment to the command.
const KEPT_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ"];

/// PATH when the worker has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the command gets from the agent.
#[derive(Debug, Clone, Default)]
pub struct Inherit {
    /// Open-files soft limit to restore (the agent's at start).
    pub open_files_soft: Option<u64>,
}

/// The command's environment: [`KEPT_ENV`] and the worker user's identity.
fn environment() -> Vec<(String, std::ffi::OsString)> {
    let mut env: Vec<(String, std::ffi::OsString)> = KEPT_ENV
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (k.to_string(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::getuid()) {
        env.push(("HOME".into(), u.dir.into_os_string()));
        env.push(("USER".into(), u.name.clone().into()));
        env.push(("LOGNAME".into(), u.name.into()));
    }
    env
}

/// In the child before exec: every descriptor above 2 close-on-exec (the
/// exec error pipe of std must stay open until exec), and the open-files
/// limit back to what the agent was given. Only system calls: async-signal
/// safe.
fn prepare_child(open_files_soft: Option<u64>) -> std::io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        // Kernels before 5.11: one fcntl per possible descriptor.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we own.
        let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            lim.rlim_cur.min(1 << 20) as i32
        } else {
            1024
        };
        for fd in 3..max {
            // SAFETY: F_SETFD on a descriptor that may not be open fails
            // harmlessly with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    if let Some(soft) = open_files_soft {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct we own.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = soft.min(lim.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
    }
    Ok(())
}

/// Runs `argv` with a timeout, keeping at most `limit` bytes of output.
pub fn run(
    argv: &[String],
    timeout: Duration,
    limit: usize,
    inherit: &Inherit,
) -> std::io::Result<Outcome> {
    let open_files_soft = inherit.open_files_soft;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(environment())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .process_group(0);
    // SAFETY: prepare_child makes only async-signal-safe system calls and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || prepare_child(open_files_soft));
    }
    let mut child = cmd.spawn()?;
    let mut pipes: Vec<Box<dyn ReadFd>> = vec![];
    if let Some(o) = child.stdout.take() {
        pipes.push(Box::new(o));
    }
    if let Some(e) = child.stderr.take() {
        pipes.push(Box::new(e));
    }
    for p in &pipes {
        set_nonblocking(p.fd());
    }
    let deadline = Instant::now() + timeout;
    let mut out: Vec<u8> = vec![];
    let mut code = None;
    let mut exited_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut open = vec![true; pipes.len()];
    loop {
        if exited_at.is_none() {
            if let Some(st) = child.try_wait()? {
                code = st.code();
                exited_at = Some(Instant::now());
            }
        }
        if let Some(at) = exited_at {
            if !open.iter().any(|o| *o) || at.elapsed() > Duration::from_millis(200) {
                break;
            }
        } else if Instant::now() >= deadline {
            // SAFETY: signalling the process group we created for the child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            timed_out = true;
            break;
        }
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .zip(&open)
            .filter(|(_, o)| **o)
            .map(|(p, _)| libc::pollfd {
                fd: p.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for its length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        for (i, p) in pipes.iter_mut().enumerate() {
            if !open[i] {
                continue;
            }
            let mut buf = [0u8; 8192];
            loop {
                match p.read(&mut buf) {
                    Ok(0) => {
                        open[i] = false;
                        break;
                    }
                    Ok(n) => {
                        let room = limit.saturating_sub(out.len());
                        out.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        open[i] = false;
                        break;
                    }
                }
            }
        }
    }
    Ok(Outcome {
        code,
        output: String::from_utf8_lossy(&out).into_owned(),
        timed_out,
    })
}

/// A readable pipe with its descriptor.
trait ReadFd: Read {
    fn fd(&self) -> i32;
}

impl<T: Read + AsRawFd> ReadFd for T {
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_split_without_a_shell() {
        assert_eq!(
            argv(
                "/usr/bin/pg_ctl %s -D '/var/lib/pg data' -o \"-p 5433\"",
                "restart"
            )
            .unwrap(),
            vec![
                "/usr/bin/pg_ctl",
                "restart",
                "-D",
                "/var/lib/pg data",
                "-o",
                "-p 5433"
            ]
        );
        assert_eq!(
            argv("echo %s; rm -rf /", "stop").unwrap(),
            vec!["echo", "stop;", "rm", "-rf", "/"]
        );
        assert!(argv("echo 'unbalanced", "stop").is_err());
        assert!(argv("   ", "stop").is_err());
    }

    #[test]
    fn captures_output_and_exit_code() {
        let o = run(
            &argv("sh -c 'echo out; echo err >&2; exit 3'", "x").unwrap(),
            Duration::from_secs(10),
            1000,
            &Inherit::default(),
        )
        .unwrap();
        assert_eq!(o.code, Some(3));
        assert!(o.output.contains("out") && o.output.contains("err"));
        assert!(!o.timed_out);
    }

    #[test]
    fn bounded_output_and_timeout() {
        let o = run(
            &argv("sh -c 'yes | head -c 100000'", "x").unwrap(),
            Duration::from_secs(10),
            1000,
            &Inherit::default(),
        )
        .unwrap();
        assert_eq!(o.output.len(), 1000);
        assert_eq!(o.code, Some(0));
        let o = run(
            &argv("sleep 30", "x").unwrap(),
            Duration::from_millis(300),
            1000,
            &Inherit::default(),
        )
        .unwrap();
        assert!(o.timed_out);
        assert_eq!(o.code, None);
    }

    #[test]
    fn the_command_inherits_nothing_of_the_agent() {
        // A descriptor of ours without close-on-exec, a variable of ours and
        // a raised limit: none may reach the command.
        let stray = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(stray.as_raw_fd(), libc::F_SETFD, 0) };
        let o = run(
            &argv(
                "sh -c 'env; echo LIMIT $(ulimit -Sn); ls /proc/self/fd | tr \"\\n\" \" \"'",
                "x",
            )
            .unwrap(),
            Duration::from_secs(10),
            100_000,
            &Inherit {
                open_files_soft: Some(777),
            },
        )
        .unwrap();
        assert_eq!(o.code, Some(0), "{}", o.output);
        // Only the kept variables (and what sh sets itself); the test
        // process's own (CARGO_*, RUST_*, ...) are gone.
        let names: Vec<&str> = o
            .output
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        assert!(names.contains(&"PATH"), "{}", o.output);
        for n in &names {
            assert!(
                KEPT_ENV.contains(n)
                    || ["HOME", "USER", "LOGNAME", "PWD", "SHLVL", "_"].contains(n),
                "{n} inherited:\n{}",
                o.output
            );
        }
        assert!(o.output.contains("LIMIT 777"), "{}", o.output);
        // ls sees 0-2 and the directory it opened itself.
        assert!(
            o.output.contains("\n0 1 2 3 \n") || o.output.ends_with("0 1 2 3 "),
            "{}",
            o.output
        );
        drop(stray);
    }

    #[test]
    fn a_daemon_keeping_the_pipes_open_does_not_hang_us() {
        // The background sleep inherits stdout, like a postmaster without -l.
        let o = run(
            &argv("sh -c 'sleep 5 & echo started'", "x").unwrap(),
            Duration::from_secs(4),
            1000,
            &Inherit::default(),
        )
        .unwrap();
        assert!(!o.timed_out);
        assert_eq!(o.code, Some(0));
        assert!(o.output.contains("started"));
    }
}
