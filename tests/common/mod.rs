//! Test harness: a private PostgreSQL cluster, the real `temboard-agent` binary
//! with a generated configuration, and a small HTTPS client that trusts the
//! generated certificate. Everything is stopped and removed on drop.
#![allow(dead_code)]

pub mod signed;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AGENT: &str = env!("CARGO_BIN_EXE_temboard-agent");

/// The PostgreSQL password every test agent is configured with (PostgreSQL
/// trusts local connections, so it is never checked): no agent log of the
/// whole suite may contain it (checked when each `Agent` is dropped).
pub const SEED_PASSWORD: &str = "seed-Pg-pw-4c1d9e";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For tests whose privilege checks only run as root: CI runs as root, so
/// there a non-root run would silently skip them; it fails instead.
pub fn ci_runs_as_root() {
    assert!(
        is_root() || std::env::var_os("CI").is_none(),
        "CI must run this test as root: its uid, gid and capability checks need it"
    );
}

/// The command prefix to run something as the `postgres` OS user when root.
fn as_postgres(cmd: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", cmd]);
        c
    } else {
        Command::new(cmd)
    }
}

fn pg_bin(name: &str) -> String {
    if let Ok(dir) = std::env::var("PGBIN") {
        return format!("{dir}/{name}");
    }
    let mut found = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        versions.sort();
        for v in versions {
            let p = v.join("bin").join(name);
            if p.exists() {
                found = Some(p.display().to_string());
            }
        }
    }
    found.unwrap_or_else(|| name.to_string())
}

/// A free TCP port on 127.0.0.1 (released before use: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A temp directory others can traverse (PostgreSQL and the workers run as
/// `postgres` when the tests run as root).
pub fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("tba-test")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// Gives a path to the `postgres` user when running as root.
pub fn give_to_postgres(p: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(p)
            .status()
            .expect("chown");
        assert!(st.success());
    }
}

/// A private PostgreSQL cluster on a unix socket in a temp dir.
pub struct PgCluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub running: bool,
    /// More `-c name=value` server options.
    pub extra: String,
    /// Where its server programs are (`None`: `PGBIN`, else the newest
    /// under `/usr/lib/postgresql`).
    pub bin: Option<PathBuf>,
}

impl PgCluster {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn start() -> PgCluster {
        Self::start_with("")
    }

    /// The path of one of its server programs.
    pub fn program(&self, name: &str) -> String {
        match &self.bin {
            Some(b) => b.join(name).display().to_string(),
            None => pg_bin(name),
        }
    }

    /// A cluster started with more server options (`-c name=value ...`).
    pub fn start_with(extra: &str) -> PgCluster {
        Self::start_in(None, extra)
    }

    /// A cluster of the server programs in `bin` (another major), started
    /// with more server options.
    pub fn start_in(bin: Option<&Path>, extra: &str) -> PgCluster {
        let dir = open_tempdir();
        give_to_postgres(dir.path());
        let initdb = match bin {
            Some(b) => b.join("initdb").display().to_string(),
            None => pg_bin("initdb"),
        };
        let out = as_postgres(&initdb)
            .args(["-N", "-A", "trust", "-U", "postgres", "-D"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = PgCluster {
            dir,
            port: free_port(),
            running: false,
            extra: extra.to_string(),
            bin: bin.map(Path::to_path_buf),
        };
        pg.start_again();
        pg
    }

    /// A streaming standby of `primary` (pg_basebackup -R), started.
    pub fn standby_of(primary: &PgCluster) -> PgCluster {
        let dir = open_tempdir();
        give_to_postgres(dir.path());
        let out = as_postgres(&primary.program("pg_basebackup"))
            .arg("-h")
            .arg(primary.socket_dir())
            .args([
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-D",
            ])
            .arg(dir.path().join("data"))
            .output()
            .expect("pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = PgCluster {
            dir,
            port: free_port(),
            running: false,
            extra: String::new(),
            bin: primary.bin.clone(),
        };
        pg.start_again();
        pg
    }

    /// A streaming standby of `primary` made with the backup functions and
    /// a file copy (the server packages of other majors have no
    /// pg_basebackup), started.
    pub fn standby_by_copy(primary: &PgCluster) -> PgCluster {
        let dir = open_tempdir();
        give_to_postgres(dir.path());
        let mut c = primary.client();
        let v: i32 = c
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .unwrap()
            .get(0);
        if v >= 150000 {
            c.execute("SELECT pg_backup_start('standby', true)", &[])
                .unwrap();
        } else {
            c.execute("SELECT pg_start_backup('standby', true, false)", &[])
                .unwrap();
        }
        let data = dir.path().join("data");
        let st = Command::new("cp")
            .arg("-a")
            .arg(primary.data())
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success(), "copy of the primary's data directory");
        let label: String = if v >= 150000 {
            c.query_one("SELECT labelfile FROM pg_backup_stop(true)", &[])
        } else {
            c.query_one("SELECT labelfile FROM pg_stop_backup(false, true)", &[])
        }
        .unwrap()
        .get(0);
        for f in ["postmaster.pid", "postmaster.opts"] {
            let _ = std::fs::remove_file(data.join(f));
        }
        for entry in std::fs::read_dir(data.join("pg_wal")).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                std::fs::remove_file(p).unwrap();
            }
        }
        std::fs::write(data.join("backup_label"), label).unwrap();
        std::fs::write(data.join("standby.signal"), "").unwrap();
        let mut auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        auto.push_str(&format!(
            "primary_conninfo = 'host={} port={} user=postgres application_name=standby'\n",
            primary.socket_dir().display(),
            primary.port
        ));
        std::fs::write(data.join("postgresql.auto.conf"), auto).unwrap();
        give_to_postgres(dir.path());
        let mut pg = PgCluster {
            dir,
            port: free_port(),
            running: false,
            extra: String::new(),
            bin: primary.bin.clone(),
        };
        pg.start_again();
        pg
    }

    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses='' -c fsync=off {}",
            self.port,
            self.socket_dir().display(),
            self.extra
        );
        let out = as_postgres(&self.program("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("postgresql.log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
    }

    /// Makes this (stopped) cluster start on `other`'s port and socket
    /// directory: what a client of `other` reaches next (`other.client()`).
    pub fn take_socket_of(&mut self, other: &PgCluster) {
        self.port = other.port;
        self.extra = format!(
            "{} -c unix_socket_directories='{}'",
            self.extra,
            other.socket_dir().display()
        );
    }

    /// `pg_ctl promote` (a standby becomes a primary), waiting for it.
    pub fn promote(&self) {
        let out = as_postgres(&self.program("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "promote"])
            .output()
            .expect("pg_ctl promote");
        assert!(
            out.status.success(),
            "pg_ctl promote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = as_postgres(&self.program("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.running = false;
    }

    pub fn client(&self) -> postgres::Client {
        self.client_to("postgres")
    }

    /// A connection to database `db` of the cluster, as `postgres`.
    pub fn client_to(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.socket_dir())
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(postgres::NoTls)
            .expect("connect to the test cluster")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The files of one agent: config (as section -> key -> value), certificate,
/// users file, home.
pub struct AgentFiles {
    pub dir: tempfile::TempDir,
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    pub port: u16,
}

impl AgentFiles {
    pub fn new(pg: Option<&PgCluster>) -> AgentFiles {
        let dir = open_tempdir();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        give_to_postgres(&home);
        temboard_agent::certgen::write_self_signed(
            &["localhost".to_string()],
            &etc.join("server.pem"),
            &etc.join("server.key"),
        )
        .unwrap();
        let users = format!(
            "alice:{}\n",
            temboard_agent::users::hash_password("alice", "alice")
        );
        std::fs::write(etc.join("users"), users).unwrap();
        std::fs::set_permissions(etc.join("users"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let port = free_port();
        let mut f = AgentFiles {
            dir,
            values: BTreeMap::new(),
            port,
        };
        f.set("temboard", "port", &port.to_string());
        f.set("temboard", "address", "127.0.0.1");
        f.set("temboard", "users", "users");
        f.set("temboard", "ssl_cert_file", "server.pem");
        f.set("temboard", "ssl_key_file", "server.key");
        f.set("temboard", "home", &home.display().to_string());
        f.set("temboard", "hostname", "agent.example.org");
        f.set("logging", "method", "stderr");
        // The whole suite runs at DEBUG so the secret checks see everything.
        f.set("logging", "level", "DEBUG");
        f.set("postgresql", "password", SEED_PASSWORD);
        match pg {
            Some(pg) => {
                f.set("postgresql", "host", &pg.socket_dir().display().to_string());
                f.set("postgresql", "port", &pg.port.to_string());
            }
            None => {
                f.set("postgresql", "host", &etc.display().to_string());
                f.set("postgresql", "port", "1");
            }
        }
        f.write();
        f
    }

    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.values
            .entry(section.into())
            .or_default()
            .insert(key.into(), value.into());
    }

    pub fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn conf(&self) -> PathBuf {
        self.etc().join("temboard-agent.conf")
    }

    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.etc().join("server.pem")).unwrap()
    }

    /// Writes the configuration file from `values`.
    pub fn write(&self) {
        let mut text = String::new();
        for (section, keys) in &self.values {
            text.push_str(&format!("[{section}]\n"));
            for (k, v) in keys {
                text.push_str(&format!("{k} = {v}\n"));
            }
            text.push('\n');
        }
        std::fs::write(self.conf(), text).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }
}

/// A running agent (the real binary).
pub struct Agent {
    pub files: AgentFiles,
    pub child: Option<Child>,
    pub pid: i32,
    pub port: u16,
    cert: Vec<u8>,
    /// Session ids handed out by `login`: secrets the log must not show.
    pub sessions: std::sync::Mutex<Vec<String>>,
}

impl Agent {
    /// Starts the agent with `files` and waits until `/status` answers.
    pub fn start(files: AgentFiles) -> Agent {
        Self::start_with(files, &[], &[])
    }

    pub fn start_with(files: AgentFiles, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let port = files
            .values
            .get("temboard")
            .and_then(|t| t.get("port"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(files.port);
        Self::start_on(files, port, args, env)
    }

    /// Starts the agent and waits for `/status` on `port` (when the port
    /// comes from somewhere else than the main file).
    pub fn start_on(files: AgentFiles, port: u16, args: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::start_via(files, port, &[], args, env)
    }

    /// Starts the agent through `wrapper` (a command that execs its
    /// arguments, such as `prlimit --nofile=...`), so the pid stays the
    /// agent's.
    pub fn start_via(
        files: AgentFiles,
        port: u16,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let spawn = |files: &AgentFiles| {
            let log = std::fs::File::create(files.log_path()).unwrap();
            let mut cmd = match wrapper.split_first() {
                Some((program, rest)) => {
                    let mut c = Command::new(program);
                    c.args(rest).arg(AGENT);
                    c
                }
                None => Command::new(AGENT),
            };
            cmd.arg("-c")
                .arg(files.conf())
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.spawn().expect("spawn agent")
        };
        let child = spawn(&files);
        let cert = files.cert_pem();
        let mut agent = Agent {
            pid: child.id() as i32,
            child: Some(child),
            files,
            port,
            cert,
            sessions: Default::default(),
        };
        for attempt in 0.. {
            let Err(log) = agent.ready(Duration::from_secs(20)) else {
                return agent;
            };
            // The port free_port() found was taken before the agent bound
            // it (another test's connection got it as its local port): the
            // main listener moves to another one, a few times at most.
            let main = agent
                .files
                .values
                .get("temboard")
                .and_then(|t| t.get("port"));
            if attempt < 4 && log.contains("EADDRINUSE") && main == Some(&agent.port.to_string()) {
                let p = free_port();
                agent.files.port = p;
                agent.files.set("temboard", "port", &p.to_string());
                agent.files.write();
                agent.port = p;
                let child = spawn(&agent.files);
                agent.pid = child.id() as i32;
                agent.child = Some(child);
                continue;
            }
            panic!("{log}");
        }
        unreachable!()
    }

    pub fn wait_ready(&mut self, limit: Duration) {
        if let Err(why) = self.ready(limit) {
            panic!("{why}");
        }
    }

    /// Waits until the agent serves; why not (its log) otherwise.
    fn ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(r) = self.get("/status") {
                if r.status == 200 {
                    return Ok(());
                }
            }
            // An agent for 9.x only answers an unsigned /status in the 9.x
            // contract, a 500 while PostgreSQL is down: its workers' health
            // says it serves.
            if let Ok(r) = self.get("/health") {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if ["http", "probe"]
                    .iter()
                    .all(|c| body["components"][c]["status"] == "ok")
                {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("agent exited early ({st}); log:\n{}", self.log()));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("agent not ready; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.files.log_path()).unwrap_or_default()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<HttpResponse> {
        https_request(self.port, &self.cert, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> std::io::Result<HttpResponse> {
        self.request("GET", path, &[], None)
    }

    /// Worker processes: (pid, title).
    pub fn workers(&self) -> Vec<(i32, String)> {
        children_of(self.pid)
    }

    pub fn worker_pid(&self, role: &str) -> Option<i32> {
        let title = format!("temboard-agent: {role}");
        self.workers()
            .into_iter()
            .find(|(_, t)| *t == title)
            .map(|(p, _)| p)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).expect("signal agent");
    }

    /// Waits for the supervisor to exit; returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let workers = self.workers();
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(6);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for (pid, _) in workers {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // After the shutdown, so its lines are checked too.
        if !std::thread::panicking() {
            self.assert_no_secret_in_log();
        }
    }
}

/// State letter and parent pid of a process, from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Every pid in /proc with its state and parent.
fn processes() -> Vec<(i32, char, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(state, ppid)| (pid, state, ppid)))
        .collect()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// Zombie children of `ppid` (exited, never reaped).
pub fn zombies_of(ppid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, state, parent)| *state == 'Z' && *parent == ppid)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Live children of `ppid` with their argv[0].
pub fn children_of(ppid: i32) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = processes()
        .into_iter()
        .filter(|(_, state, parent)| *state != 'Z' && *parent == ppid)
        .map(|(pid, _, _)| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv0 = cmdline
                .split(|b| *b == 0)
                .next()
                .map(|s| String::from_utf8_lossy(s).to_string())
                .unwrap_or_default();
            (pid, argv0)
        })
        .collect();
    out.sort();
    out
}

/// Polls `f` until it is true or `limit` passes.
/// The agent's connections to PostgreSQL now (its `application_name`).
pub fn agent_backends(c: &mut postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent'",
        &[],
    )
    .unwrap()
    .get(0)
}

pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client configuration trusting only the agent's generated certificate.
pub fn tls_config(cert_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(cfg)
}

/// One HTTPS request on a new connection; verifies the server certificate.
pub fn https_request(
    port: u16,
    cert_pem: &[u8],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<HttpResponse> {
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    KeepAlive::connect(port, cert_pem)?.request(method, path, &all, body)
}

/// Reads one HTTP/1.x message (request or response): first line, headers,
/// and a body of `Content-Length` bytes.
/// First line, headers and body of an HTTP message.
type Message = (String, Vec<(String, String)>, Vec<u8>);

fn read_message(r: &mut impl Read) -> std::io::Result<Message> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no message head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        return Ok((first, headers, read_chunked(r, body)?));
    }
    while body.len() < len {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok((first, headers, body))
}

/// Decodes a chunked body (`pending`: what was read past the head); a
/// stream cut before the last chunk is an error, never a short body.
fn read_chunked(r: &mut impl Read, mut pending: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut fill = |pending: &mut Vec<u8>, want: usize| -> std::io::Result<()> {
        while pending.len() < want {
            let n = r.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "chunked body cut",
                ));
            }
            pending.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(p) = pending.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            let want = pending.len() + 1;
            fill(&mut pending, want)?;
        };
        let size_text = String::from_utf8_lossy(&pending[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_text:?}")))?;
        pending.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        fill(&mut pending, size + 2)?;
        body.extend_from_slice(&pending[..size]);
        pending.drain(..size + 2);
    }
}

pub fn read_response(r: &mut impl Read) -> std::io::Result<HttpResponse> {
    let (status_line, headers, body) = read_message(r)?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A persistent HTTPS connection (HTTP/1.1 keep-alive).
pub struct KeepAlive {
    /// The TLS stream, for tests that speak raw bytes.
    pub tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl KeepAlive {
    pub fn connect(port: u16, cert_pem: &[u8]) -> std::io::Result<KeepAlive> {
        Self::connect_as(port, cert_pem, "localhost")
    }

    /// Connects expecting a certificate for `name`.
    pub fn connect_as(port: u16, cert_pem: &[u8], name: &str) -> std::io::Result<KeepAlive> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(tls_config(cert_pem), name)
            .map_err(std::io::Error::other)?;
        Ok(KeepAlive {
            tls: rustls::StreamOwned::new(conn, tcp),
        })
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<HttpResponse> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        self.tls.write_all(&bytes)?;
        self.tls.flush()?;
        read_response(&mut self.tls)
    }
}

impl Agent {
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        session: Option<&str>,
    ) -> HttpResponse {
        let text = body.to_string();
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(s) = session {
            headers.push(("X-Session", s));
        }
        self.request("POST", path, &headers, Some(text.as_bytes()))
            .expect("POST")
    }

    pub fn get_with_session(&self, path: &str, session: &str) -> HttpResponse {
        self.request("GET", path, &[("X-Session", session)], None)
            .expect("GET")
    }

    /// Messages of `/notifications`, newest first.
    pub fn notification_messages(&self, session: &str) -> Vec<String> {
        let list = self.get_with_session("/notifications", session).json();
        list.as_array()
            .expect("a list")
            .iter()
            .map(|n| n["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Logs in and returns the session id (panics unless 200).
    pub fn login(&self, user: &str, password: &str) -> String {
        let r = self.post_json(
            "/login",
            &serde_json::json!({"username": user, "password": password}),
            None,
        );
        assert_eq!(
            r.status,
            200,
            "login failed: {}",
            String::from_utf8_lossy(&r.body)
        );
        let id = r.json()["session"].as_str().unwrap().to_string();
        self.sessions.lock().unwrap().push(id.clone());
        id
    }

    /// Panics if the agent's log shows a secret: the seeded PostgreSQL
    /// password or a session id handed out.
    pub fn assert_no_secret_in_log(&self) {
        // stderr, plus the log file when the agent logs to one (its stderr
        // is then nearly empty and would prove nothing).
        let mut log = self.log();
        let logging = self.files.values.get("logging");
        if logging.and_then(|l| l.get("method")).map(String::as_str) == Some("file") {
            if let Some(dest) = logging.and_then(|l| l.get("destination")) {
                let path = self.files.etc().join(dest);
                log.push_str(&std::fs::read_to_string(path).unwrap_or_default());
            }
        }
        assert!(
            !log.contains(SEED_PASSWORD),
            "the PostgreSQL password is in the log:\n{log}"
        );
        for id in self.sessions.lock().unwrap().iter() {
            assert!(
                !log.contains(id.as_str()),
                "session id {id} in the log:\n{log}"
            );
        }
    }
}

impl PgCluster {
    /// An `[administration] pg_ctl` template driving this cluster.
    pub fn pg_ctl_template(&self) -> String {
        format!(
            "{} %s -D {} -w -t 30 -l {} -o \"-p {} -k {} -c listen_addresses='' -c fsync=off\"",
            self.program("pg_ctl"),
            self.data().display(),
            self.dir.path().join("postgresql.log").display(),
            self.port,
            self.socket_dir().display()
        )
    }
}

/// One request received by the test collector.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A small HTTPS server standing in for the temBoard UI collector: records
/// every request and answers the status set in `status`.
pub struct TestCollector {
    pub port: u16,
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
    pub status: Arc<std::sync::atomic::AtomicU16>,
    /// Extra response header lines (each ending with CRLF).
    pub extra_headers: Arc<std::sync::Mutex<String>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestCollector {
    /// Starts on `port` with the certificate and key in `dir` (created if absent).
    pub fn start(port: u16, dir: &Path) -> TestCollector {
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = (dir.join("collector.pem"), dir.join("collector.key"));
        if !cert.exists() {
            temboard_agent::certgen::write_self_signed(
                &["127.0.0.1".into(), "localhost".into()],
                &cert,
                &key,
            )
            .unwrap();
            std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let k = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, k)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("collector port");
        listener.set_nonblocking(true).unwrap();
        let received = Arc::new(std::sync::Mutex::new(vec![]));
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let extra_headers = Arc::new(std::sync::Mutex::new(String::new()));
        let (r, st, sp, xh) = (
            received.clone(),
            status.clone(),
            stop.clone(),
            extra_headers.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !sp.load(std::sync::atomic::Ordering::SeqCst) {
                let (tcp, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                tcp.set_nonblocking(false).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let Ok((request_line, headers, body)) = read_message(&mut tls) else {
                    continue;
                };
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                let code = st.load(std::sync::atomic::Ordering::SeqCst);
                r.lock().unwrap().push(Received {
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).to_string(),
                });
                let reply = if code == 200 {
                    "{\"done\": true}"
                } else {
                    "{\"error\": \"test collector says no\"}"
                };
                let extra = xh.lock().unwrap().clone();
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = tls.write_all(resp.as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        TestCollector {
            port,
            received,
            status,
            stop,
            thread: Some(thread),
            extra_headers,
        }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP connection to the agent from a chosen loopback source address.
pub fn connect_from(source: std::net::Ipv4Addr, port: u16) -> std::net::TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )
    .unwrap();
    connect(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::LOCALHOST,
            port,
        )),
    )
    .unwrap();
    std::net::TcpStream::from(fd)
}

/// What `promtool check metrics` (Debian's `prometheus`, installed by
/// scripts/prereqs.sh) says of a scrape: empty when it is clean.
pub fn promtool_check(text: &str) -> String {
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said.trim().to_string()
    } else {
        format!("exit {}: {said}", out.status)
    }
}

/// The tests' private Python (scripts/test-python.sh: a virtual
/// environment with openapi-spec-validator and the real temBoard 9.0.1
/// toolkit, never on PATH), created when missing.
pub fn test_python() -> String {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/test-python.sh"
            ))
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "scripts/test-python.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
    .clone()
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The UI stand-in (tests/helpers/ui_standin.py), killed on drop.
pub struct UiStandin {
    child: std::process::Child,
    pub url: String,
}

impl UiStandin {
    pub fn start(
        files: &AgentFiles,
        signing_key: &std::path::Path,
        record: &std::path::Path,
    ) -> Self {
        Self::start_with_clock(files, signing_key, record, 0)
    }

    /// One whose `Date` header is `offset` seconds off this host's clock.
    pub fn start_with_clock(
        files: &AgentFiles,
        signing_key: &std::path::Path,
        record: &std::path::Path,
        offset: i64,
    ) -> Self {
        use std::io::BufRead;
        let port = free_port();
        let mut child = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/helpers/ui_standin.py"
            ))
            .arg(port.to_string())
            .arg(files.etc().join("server.pem"))
            .arg(files.etc().join("server.key"))
            .arg(signing_key)
            .arg(record)
            .env("UI_STANDIN_CLOCK_OFFSET", offset.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        UiStandin {
            child,
            url: format!("https://localhost:{port}"),
        }
    }
}

impl Drop for UiStandin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
