//! Running the control command: argv split like a shell would (no shell
//! involved), stdin from /dev/null, output captured and bounded, a timeout
//! that kills the command's whole process group, and no agent descriptor
//! inherited (every fd of the worker is close-on-exec).
//!
//! The output is read until the command exits plus a short grace, not until
//! EOF: a postmaster started without `-l` keeps the pipes open forever.

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

/// Runs `argv` with a timeout, keeping at most `limit` bytes of output.
pub fn run(argv: &[String], timeout: Duration, limit: usize) -> std::io::Result<Outcome> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .process_group(0)
        .spawn()?;
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
        )
        .unwrap();
        assert_eq!(o.output.len(), 1000);
        assert_eq!(o.code, Some(0));
        let o = run(
            &argv("sleep 30", "x").unwrap(),
            Duration::from_millis(300),
            1000,
        )
        .unwrap();
        assert!(o.timed_out);
        assert_eq!(o.code, None);
    }

    #[test]
    fn a_daemon_keeping_the_pipes_open_does_not_hang_us() {
        // The background sleep inherits stdout, like a postmaster without -l.
        let o = run(
            &argv("sh -c 'sleep 5 & echo started'", "x").unwrap(),
            Duration::from_secs(4),
            1000,
        )
        .unwrap();
        assert!(!o.timed_out);
        assert_eq!(o.code, Some(0));
        assert!(o.output.contains("started"));
    }
}
