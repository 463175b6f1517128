//! `temboard-agent setup`: prepares one agent for one PostgreSQL cluster, the
//! job of the 2.x `auto_configure.sh`. Connects with the `PG*` environment
//! (or options), finds the cluster's facts, and writes under a prefix
//! (default `/etc/temboard-agent`) `<version>/<name>/temboard-agent.conf`, an
//! empty users file, a self-signed certificate for the host's FQDN, and the
//! home directory. The home belongs to the cluster owner; the configuration,
//! users file and key belong to root and are readable by the owner's group
//! (0640): a root supervisor must never read a configuration the PostgreSQL
//! OS user can edit (it could point the log file at any root file). Idempotent: an existing
//! configuration is left untouched and the command says so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Options of the command (CLI flags override `PG*` variables).
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// Where configurations go.
    pub prefix: PathBuf,
    /// Where homes go.
    pub home_prefix: PathBuf,
    /// PostgreSQL socket directory or host (`PGHOST`).
    pub pghost: String,
    /// Port (`PGPORT`).
    pub pgport: u16,
    /// Super-user (`PGUSER`).
    pub pguser: String,
    /// Database (`PGDATABASE`).
    pub pgdatabase: String,
    /// Host name override (`TEMBOARD_HOSTNAME`).
    pub hostname: Option<String>,
    /// First port to try for the agent.
    pub first_port: u16,
    /// A temBoard 9.x UI to prepare for (`--ui-url`): its URL goes in the
    /// configuration and its signing key beside it.
    pub ui_url: Option<String>,
    /// The CA that signed the UI's certificate (`--ui-ca-file`): the key is
    /// fetched verified against it, and it goes in the configuration as
    /// `ssl_ca_cert_file`. Without it, the system's roots.
    pub ui_ca_file: Option<PathBuf>,
    /// Fetch the key without verifying the UI (`--insecure`).
    pub insecure: bool,
}

/// What was found and written.
#[derive(Debug, Clone)]
pub struct SetupResult {
    /// The configuration file.
    pub configfile: PathBuf,
    /// The agent port.
    pub port: u16,
    /// The collector key.
    pub key: String,
    /// Whether anything was written (false: it existed already).
    pub created: bool,
    /// With `--ui-url`: where the UI's key was written, and what to print
    /// of it (its fingerprint and how to compare it with the UI's).
    pub signing_key: Option<(PathBuf, String)>,
    /// Whether `pg_stat_statements` can be installed in this cluster.
    pub pg_stat_statements: bool,
}

fn owner_of(path: &Path) -> Result<nix::unistd::User, String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .uid();
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("owner uid {uid} of {} has no user entry", path.display()))
}

fn chown_to(path: &Path, user: &nix::unistd::User) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Root owns it, the agent's group may read it: the files a root supervisor
/// trusts must not be writable by the worker user.
fn give_to_root_readable_by(path: &Path, user: &nix::unistd::User) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(path, Some(0), Some(user.gid.as_raw()))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// Whether systemd runs this host and knows the `postgresql@` template unit
/// (Debian's postgresql-common).
fn systemd_runs_clusters() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && [
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
            "/etc/systemd/system",
        ]
        .iter()
        .any(|d| Path::new(d).join("postgresql@.service").exists())
}

/// The `[administration] pg_ctl` command for a cluster.
///
/// Why systemctl where systemd runs the cluster: a postmaster that `pg_ctl`
/// starts from the agent is a child of the agent's unit, in its control
/// group, and systemd kills it with the agent when that unit stops
/// (`KillMode=control-group`). Through `systemctl`, PostgreSQL stays in its
/// own `postgresql@<version>-<name>` unit (the PostgreSQL OS user needs the
/// polkit rule shipped in `packaging/polkit/`).
pub fn pg_ctl_template(major: &str, name: &str, data: &str, systemd: bool) -> String {
    if systemd {
        format!("/usr/bin/systemctl %s postgresql@{major}-{name}.service")
    } else {
        format!("/usr/lib/postgresql/{major}/bin/pg_ctl %s -D '{data}' -w")
    }
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// Ports already given to agents under `prefix`.
fn ports_taken(prefix: &Path) -> Vec<u16> {
    let mut out = vec![];
    let Ok(versions) = std::fs::read_dir(prefix) else {
        return out;
    };
    for v in versions.flatten() {
        let Ok(names) = std::fs::read_dir(v.path()) else {
            continue;
        };
        for n in names.flatten() {
            let conf = n.path().join("temboard-agent.conf");
            if let Ok(f) = crate::config::ini_file::IniFile::load(&conf) {
                if let Some(p) = f.get("temboard", "port").and_then(|p| p.value.parse().ok()) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Runs the setup.
pub fn run(o: &SetupOptions) -> Result<SetupResult, String> {
    let hostname = o.hostname.clone().unwrap_or_else(crate::host::system_fqdn);
    if !crate::host::is_fqdn(&hostname) {
        return Err(format!(
            "host name '{hostname}' is not a fully qualified domain name: fix the host's name resolution or set TEMBOARD_HOSTNAME"
        ));
    }
    let mut cfg = postgres::Config::new();
    if o.pghost.starts_with('/') {
        cfg.host_path(&o.pghost);
    } else {
        cfg.host(&o.pghost);
    }
    cfg.port(o.pgport)
        .user(&o.pguser)
        .dbname(&o.pgdatabase)
        .application_name("temboard-agent-setup");
    cfg.connect_timeout(std::time::Duration::from_secs(5));
    let mut client = cfg.connect(postgres::NoTls).map_err(|e| {
        format!(
            "cannot connect to PostgreSQL (host {}, port {}, user {}): {e}",
            o.pghost, o.pgport, o.pguser
        )
    })?;
    let row = client
        .query_one(
            "SELECT current_setting('data_directory'), current_setting('server_version_num')::int,
                    current_setting('cluster_name'), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .map_err(|e| format!("cannot read the cluster's settings: {e}"))?;
    let data: String = row.get(0);
    let version_num: i32 = row.get(1);
    let superuser: bool = row.get(3);
    if !superuser {
        return Err(format!(
            "PostgreSQL user {} is not a super-user: the agent needs one",
            o.pguser
        ));
    }
    let major = if version_num >= 100000 {
        (version_num / 10000).to_string()
    } else {
        format!("{}.{}", version_num / 10000, (version_num / 100) % 100)
    };
    let cluster_name: String = row.get(2);
    let name = cluster_name
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("main")
        .to_string();
    let owner = owner_of(Path::new(&data))?;
    let dir = o.prefix.join(&major).join(&name);
    let conf = dir.join("temboard-agent.conf");
    if conf.exists() {
        let f = crate::config::ini_file::IniFile::load(&conf).map_err(|e| e.to_string())?;
        return Ok(SetupResult {
            port: f
                .get("temboard", "port")
                .and_then(|p| p.value.parse().ok())
                .unwrap_or(0),
            key: f
                .get("temboard", "key")
                .map(|k| k.value.clone())
                .unwrap_or_default(),
            configfile: conf,
            created: false,
            signing_key: None,
            pg_stat_statements: false,
        });
    }
    let pg_stat_statements: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(false);
    // The UI's key first: a UI that cannot be reached leaves nothing written.
    let ui_key = match &o.ui_url {
        Some(url) => {
            let url = url.trim_end_matches('/').to_string();
            crate::ui9::check_scheme(&url, o.insecure)?;
            let trust = crate::ui9::trust(o.ui_ca_file.clone(), o.insecure);
            let pem = crate::ui9::download_key(&url, &trust)?;
            let shown = crate::ui9::describe_key(&url, &pem, &trust);
            Some((url.clone(), pem, shown))
        }
        None => None,
    };
    let taken = ports_taken(&o.prefix);
    let port = (o.first_port..=u16::MAX)
        .find(|p| !taken.contains(p) && *p != o.pgport && port_free(*p))
        .ok_or("no free TCP port for the agent")?;
    let key = crate::store::sessions::new_id().map_err(|e| e.to_string())?[..32].to_string();
    let home = o.home_prefix.join(&major).join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    chown_to(&home, &owner)?;
    let (cert, keyfile, users) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("users"),
    );
    crate::certgen::write_self_signed(std::slice::from_ref(&hostname), &cert, &keyfile)?;
    std::fs::write(&users, "").map_err(|e| format!("{}: {e}", users.display()))?;
    for f in [&keyfile, &users] {
        give_to_root_readable_by(f, &owner)?;
    }
    let pg_ctl = pg_ctl_template(&major, &name, &data, systemd_runs_clusters());
    let text = format!(
        "# Written by temboard-agent setup for PostgreSQL {major}/{name}.\n\
         [temboard]\nport = {port}\nusers = users\nssl_cert_file = server.pem\nssl_key_file = server.key\n\
         home = {home}\nhostname = {hostname}\nkey = {key}\n{ui}\n\
         [postgresql]\nhost = {pghost}\nport = {pgport}\nuser = {pguser}\ndbname = {pgdb}\ninstance = {name}\n\n\
         [logging]\nmethod = syslog\nlevel = INFO\n\n\
         [administration]\npg_ctl = {pg_ctl}\n\n\
         [pgconf]\n\
         # Settings that run programs as the cluster owner: uncomment to refuse\n\
         # changing them through the API (docs/configuration.md).\n\
         # protected_settings = archive_command, restore_command, ssl_passphrase_command, shared_preload_libraries, session_preload_libraries, local_preload_libraries, dynamic_library_path\n",
        ui = match (&ui_key, &o.ui_ca_file) {
            (Some((url, _, _)), Some(ca)) => format!(
                "ui_url = {url}\nssl_ca_cert_file = {}\n",
                ca.canonicalize().unwrap_or_else(|_| ca.clone()).display()
            ),
            (Some((url, _, _)), None) => format!("ui_url = {url}\n"),
            (None, _) => String::new(),
        },
        home = home.display(),
        pghost = o.pghost,
        pgport = o.pgport,
        pguser = o.pguser,
        pgdb = o.pgdatabase,
    );
    let tmp = dir.join(".temboard-agent.conf.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    give_to_root_readable_by(&tmp, &owner)?;
    std::fs::rename(&tmp, &conf).map_err(|e| format!("{}: {e}", conf.display()))?;
    let signing_key = match ui_key {
        Some((_, pem, shown)) => {
            let path = dir.join("signing-public.pem");
            std::fs::write(&path, &pem).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| e.to_string())?;
            Some((path, shown))
        }
        None => None,
    };
    Ok(SetupResult {
        configfile: conf,
        port,
        key,
        created: true,
        signing_key,
        pg_stat_statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_stays_in_its_own_unit_where_systemd_runs_it() {
        assert_eq!(
            pg_ctl_template("15", "main", "/var/lib/postgresql/15/main", true),
            "/usr/bin/systemctl %s postgresql@15-main.service"
        );
        assert_eq!(
            pg_ctl_template("15", "main", "/var/lib/postgresql/15/main", false),
            "/usr/lib/postgresql/15/bin/pg_ctl %s -D '/var/lib/postgresql/15/main' -w"
        );
    }
}
