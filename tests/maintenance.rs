//! The maintenance plugin (issue #20, facts 9.x section 9) against the real
//! binary and PostgreSQL, from signed requests: the pages' shapes and
//! types, the bloat estimates before and after a VACUUM FULL run through
//! the API, tasks scheduled at their time, canceled before it or while
//! running, a task worker killed in the middle, a task surviving a restart.

mod common;

use std::time::{Duration, Instant};

use common::signed::*;
use common::*;
use serde_json::{json, Value};

const PLUGINS: &str = r#"["activity", "administration", "maintenance"]"#;

fn agent_for(pg: &PgCluster, public: &str) -> Agent {
    agent_with_plugins(pg, public, PLUGINS)
}

fn get(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str) -> (u16, Value) {
    let r = Signed::get(target).send(agent, key);
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

fn post(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str, body: Value) -> (u16, Value) {
    let text = body.to_string();
    let r = Signed {
        user: "maud",
        ..Signed::post(target, text.as_bytes())
    }
    .send(agent, key);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn delete(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str) -> (u16, Value) {
    let r = Signed {
        method: "DELETE",
        user: "dora",
        ..Signed::get(target)
    }
    .send(agent, key);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`, `secs` from now.
fn at(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The status of task `id` in a `…/scheduled` list.
fn status_in(agent: &Agent, key: &rsa::RsaPrivateKey, list: &str, id: &str) -> Option<String> {
    let (code, rows) = get(agent, key, list);
    assert_eq!(code, 200, "{rows}");
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["status"].as_str().unwrap().to_string())
}

/// Whether task `id` shows `status` in `list` within `secs` seconds.
fn reaches(
    agent: &Agent,
    key: &rsa::RsaPrivateKey,
    list: &str,
    id: &str,
    status: &str,
    secs: u64,
) -> bool {
    eventually(Duration::from_secs(secs), || {
        status_in(agent, key, list, id).as_deref() == Some(status)
    })
}

/// The operation of a task (the newest of that type whose output starts
/// with the statement), from the signed `/operations`.
fn operations_of(agent: &Agent, key: &rsa::RsaPrivateKey, kind: &str) -> Vec<Value> {
    let (code, body) = get(agent, key, "/operations");
    assert_eq!(code, 200, "{body}");
    body["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == kind)
        .cloned()
        .collect()
}

fn messages(agent: &Agent, key: &rsa::RsaPrivateKey) -> Vec<(String, String)> {
    notification_pairs(agent, key)
}

/// A `VACUUM FULL` of `app.<table>` scheduled now, its backend waiting for
/// the lock another session (the returned client, in a transaction) holds:
/// the task is `doing` until that session commits or the task is canceled.
fn blocked_vacuum_full(
    pg: &PgCluster,
    agent: &Agent,
    key: &rsa::RsaPrivateKey,
    table: &str,
) -> (postgres::Client, String) {
    let mut holder = pg.client_to("app");
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE app.{table} IN ACCESS SHARE MODE;"
        ))
        .unwrap();
    let (code, r) = post(
        agent,
        key,
        &format!("/maintenance/app/schema/app/table/{table}/vacuum"),
        json!({"mode": "full"}),
    );
    assert_eq!(code, 200, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let list = "/maintenance/app/vacuum/scheduled";
    assert!(
        reaches(agent, key, list, &id, "doing", 30),
        "the VACUUM FULL never started"
    );
    (holder, id)
}

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

fn is_float(v: &Value) -> bool {
    v.is_f64()
}

/// A database `app` with schema `app`: table `t` (100,000 rows, primary
/// key, a hash index, an expression index), analyzed.
fn setup_app(pg: &PgCluster) -> postgres::Client {
    pg.client().batch_execute("CREATE DATABASE app").unwrap();
    let mut c = pg.client_to("app");
    c.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.t (id int PRIMARY KEY, label text, n int) WITH (autovacuum_enabled = off);
         INSERT INTO app.t SELECT i, 'label ' || i, i % 100 FROM generate_series(1, 100000) i;
         CREATE INDEX t_hash ON app.t USING hash (n);
         CREATE INDEX t_expr ON app.t ((lower(label)));
         CREATE TABLE app.empty (x int);
         ANALYZE app.t;",
    )
    .unwrap();
    c
}

#[test]
fn reading_routes_answer_the_9x_shapes_and_bloat_follows_vacuum_full() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut app = setup_app(&pg);
    let agent = agent_for(&pg, &public);

    // GET /maintenance: the instance and every database.
    let (code, inst) = get(&agent, &key, "/maintenance");
    assert_eq!(code, 200, "{inst}");
    assert!(is_float(&inst["instance"]["total_bytes"]), "{inst}");
    assert!(inst["instance"]["total_size"].is_string());
    let dbs = inst["databases"].as_array().unwrap();
    let names: Vec<&str> = dbs.iter().map(|d| d["datname"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["app", "postgres"], "templates left out");
    let d = &dbs[0];
    assert_eq!(
        keys(d),
        sorted(&[
            "datname",
            "total_bytes",
            "total_size",
            "n_tables",
            "tables_bytes",
            "n_indexes",
            "indexes_bytes",
            "tables_bloat_bytes",
            "indexes_bloat_bytes",
            "toast_bytes",
            "tables_size",
            "indexes_size",
            "tables_bloat_size",
            "indexes_bloat_size",
            "toast_size",
        ])
    );
    assert!(is_int(&d["total_bytes"]));
    for k in [
        "n_tables",
        "tables_bytes",
        "n_indexes",
        "indexes_bytes",
        "toast_bytes",
    ] {
        assert!(is_float(&d[k]), "{k}: {d}");
    }
    let server_size: i64 = app
        .query_one("SELECT pg_database_size('app')", &[])
        .unwrap()
        .get(0);
    assert_eq!(d["total_bytes"].as_i64().unwrap(), server_size);

    // GET /maintenance/app: the schemas.
    let (code, db) = get(&agent, &key, "/maintenance/app");
    assert_eq!(code, 200, "{db}");
    assert_eq!(db["total_bytes"].as_i64().unwrap(), server_size);
    let schemas = db["schemas"].as_array().unwrap();
    let names: Vec<&str> = schemas
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"app") && names.contains(&"public") && names.contains(&"pg_catalog"));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("pg_toast") || n.starts_with("pg_temp")));
    let s = schemas.iter().find(|s| s["name"] == "app").unwrap();
    assert_eq!(s["n_tables"], 2, "{s}");
    assert_eq!(s["n_indexes"], 3, "{s}");
    for k in [
        "total_bytes",
        "n_tables",
        "tables_bytes",
        "n_indexes",
        "indexes_bytes",
    ] {
        assert!(is_int(&s[k]), "{k}: {s}");
    }
    for k in ["tables_bloat_bytes", "indexes_bloat_bytes", "toast_bytes"] {
        assert!(is_float(&s[k]), "{k}: {s}");
    }
    for k in ["total_size", "tables_size", "indexes_size"] {
        assert!(s[k].is_string(), "{k}: {s}");
    }
    let heap: i64 = app
        .query_one(
            "SELECT pg_relation_size('app.t') + pg_relation_size('app.empty')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(s["tables_bytes"].as_i64().unwrap(), heap);

    // GET /maintenance/app/schema/app: tables and every index.
    let (code, sc) = get(&agent, &key, "/maintenance/app/schema/app");
    assert_eq!(code, 200, "{sc}");
    let t = sc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t")
        .unwrap()
        .clone();
    assert_eq!(
        keys(&t),
        sorted(&[
            "name",
            "total_bytes",
            "index_bytes",
            "toast_bytes",
            "table_bytes",
            "n_indexes",
            "total_size",
            "index_size",
            "toast_size",
            "table_size",
            "bloat_bytes",
            "bloat_size",
            "index_bloat_bytes",
            "index_bloat_size",
            "row_estimate",
        ])
    );
    assert_eq!(t["n_indexes"], 3);
    assert_eq!(t["row_estimate"].as_f64().unwrap(), 100_000.0);
    assert!(is_float(&t["bloat_bytes"]) && is_float(&t["row_estimate"]));
    assert_eq!(
        t["table_bytes"].as_i64().unwrap(),
        t["total_bytes"].as_i64().unwrap()
            - t["index_bytes"].as_i64().unwrap()
            - t["toast_bytes"].as_i64().unwrap()
    );
    assert!(is_int(&sc["total_bytes"]) && sc["size"].is_string(), "{sc}");
    let indexes = sc["indexes"].as_array().unwrap();
    let names: Vec<&str> = indexes
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["t_expr", "t_hash", "t_pkey"], "every index");
    let pkey = indexes.iter().find(|i| i["name"] == "t_pkey").unwrap();
    assert_eq!(
        keys(pkey),
        sorted(&[
            "tablename",
            "name",
            "tablespace",
            "number_of_columns",
            "scans",
            "idx_tup_read",
            "idx_tup_fetch",
            "indexrelname",
            "indisunique",
            "def",
            "total_bytes",
            "total_size",
            "type",
            "bloat_bytes",
            "bloat_size",
        ])
    );
    assert_eq!(pkey["type"], "btree");
    assert_eq!(pkey["indisunique"], true);
    assert_eq!(pkey["tablespace"], Value::Null);
    assert!(is_float(&pkey["bloat_bytes"]), "{pkey}");
    let hash = indexes.iter().find(|i| i["name"] == "t_hash").unwrap();
    assert_eq!(hash["type"], "hash");
    assert_eq!(hash["bloat_bytes"], Value::Null, "not estimable");
    let expr = indexes.iter().find(|i| i["name"] == "t_expr").unwrap();
    assert_eq!(
        expr["bloat_bytes"],
        Value::Null,
        "an expression: not estimable"
    );
    // A schema without tables, an unknown schema.
    let (code, public_schema) = get(&agent, &key, "/maintenance/app/schema/public");
    assert_eq!(code, 200);
    assert_eq!(public_schema, json!({"tables": [], "indexes": []}));
    let (code, none) = get(&agent, &key, "/maintenance/app/schema/nope");
    assert_eq!((code, none), (200, json!({"tables": [], "indexes": []})));

    // The table page: the table, its statistics, fillfactor, indexes.
    let (code, tp) = get(&agent, &key, "/maintenance/app/schema/app/table/t");
    assert_eq!(code, 200, "{tp}");
    for k in [
        "relid",
        "schemaname",
        "relname",
        "seq_scan",
        "n_live_tup",
        "last_vacuum",
        "last_analyze",
        "vacuum_count",
    ] {
        assert!(tp.get(k).is_some(), "{k} missing: {tp}");
    }
    assert!(tp.get("n_indexes").is_none());
    assert_eq!(tp["fillfactor"], 100);
    assert!(tp["last_analyze"].is_string(), "{tp}");
    assert_eq!(tp["indexes"].as_array().unwrap().len(), 3);

    // Unknown database and table: 404 naming them.
    assert_eq!(
        error(&Signed::get("/maintenance/nodb").send(&agent, &key)),
        (404, "Database nodb not found".into())
    );
    assert_eq!(
        error(&Signed::get("/maintenance/app/schema/app/table/nope").send(&agent, &key)),
        (404, "Table app.nope not found".into())
    );
    // A SQL-looking name is only a name.
    let r = Signed::get("/maintenance/app/schema/app/table/t';%20DROP%20TABLE%20app.t;--")
        .send(&agent, &key);
    assert_eq!(r.status, 404);
    assert!(app.query_one("SELECT count(*) FROM app.t", &[]).is_ok());

    // Bloat: 90 % of the rows deleted, statistics refreshed, no vacuum.
    let bloat = |agent: &Agent| {
        let (_, tp) = get(agent, &key, "/maintenance/app/schema/app/table/t");
        // The schema page (the database's estimates) says the same.
        let (_, sp) = get(agent, &key, "/maintenance/app/schema/app");
        let named = |list: &Value, name: &str| -> Value {
            list.as_array()
                .and_then(|l| l.iter().find(|x| x["name"] == name))
                .map_or(Value::Null, |x| x["bloat_bytes"].clone())
        };
        assert_eq!(named(&sp["tables"], "t"), tp["bloat_bytes"], "{sp}");
        let pk = named(&tp["indexes"], "t_pkey").as_f64().unwrap();
        (
            tp["bloat_bytes"].as_f64().unwrap(),
            tp["table_bytes"].as_i64().unwrap() as f64,
            pk,
        )
    };
    // How the table page's estimates were had, the last time.
    let table_estimates = |agent: &Agent| -> String {
        let log = agent.log();
        let line = log
            .lines()
            .rfind(|l| l.contains("maintenance: app Table(\"app\", \"t\")"))
            .unwrap_or_default();
        line.split("estimates (")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or_default()
            .to_string()
    };
    let (before, size, _) = bloat(&agent);
    // The database's estimates were made above (its page): the table's
    // page took its own from them, its inputs unchanged since.
    assert_eq!(table_estimates(&agent), "its database's", "{}", agent.log());
    app.batch_execute("DELETE FROM app.t WHERE id % 10 <> 0; ANALYZE app.t;")
        .unwrap();
    let (after_delete, size_after_delete, pk_after_delete) = bloat(&agent);
    // The ANALYZE changed the table's stamp: its estimates made again, not
    // the database's taken (the schema page above made those again after).
    assert_eq!(table_estimates(&agent), "made", "{}", agent.log());
    println!(
        "bloat of app.t: {before:.0} of {size:.0} bytes before; {after_delete:.0} of {size_after_delete:.0} after deleting 90 % (t_pkey: {pk_after_delete:.0})"
    );
    assert!(
        after_delete > 0.8 * size_after_delete && after_delete > before + 0.5 * size,
        "bloat did not rise: {before} -> {after_delete} of {size_after_delete}"
    );

    // VACUUM FULL through the API: it runs and the estimate falls.
    let (code, r) = post(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/t/vacuum",
        json!({"mode": "full,analyze"}),
    );
    assert_eq!(code, 200, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 8);
    let list = "/maintenance/app/schema/app/table/t/vacuum/scheduled";
    assert!(
        reaches(&agent, &key, list, &id, "done", 60),
        "VACUUM FULL not done: {:?}",
        status_in(&agent, &key, list, &id)
    );
    let (after_full, size_after_full, pk_after_full) = bloat(&agent);
    println!("after VACUUM FULL through the API: {after_full:.0} of {size_after_full:.0} bytes (t_pkey: {pk_after_full:.0})");
    assert!(
        after_full < 0.2 * size_after_full && size_after_full < 0.3 * size_after_delete,
        "bloat did not fall: {after_full} of {size_after_full}"
    );
    assert!(
        pk_after_full < pk_after_delete,
        "{pk_after_full} vs {pk_after_delete}"
    );
    // Its operation: the statement, identifiers quoted, and VERBOSE output.
    let ops = operations_of(&agent, &key, "vacuum");
    let op = &ops[0];
    assert_eq!(op["state"], "DONE", "{op}");
    assert_eq!(op["username"], "maud");
    let output = op["output"].as_str().unwrap();
    assert!(
        output.starts_with("VACUUM (VERBOSE, FULL, ANALYZE) \"app\".\"t\""),
        "{output}"
    );
    assert!(output.contains("INFO: "), "{output}");
}

#[test]
fn tasks_run_at_their_time_are_canceled_and_refused_clearly() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut app = setup_app(&pg);
    app.batch_execute(
        "CREATE TABLE app.u (x int); CREATE TABLE app.v (x int); CREATE TABLE app.w (x int);
         CREATE TABLE app.big AS SELECT i AS x FROM generate_series(1, 200000) i;
         ANALYZE app.big;",
    )
    .unwrap();
    let agent = agent_for(&pg, &public);
    let last_analyze = |c: &mut postgres::Client, t: &str| -> Option<std::time::SystemTime> {
        c.query_one(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'app' AND relname = $1",
            &[&t],
        )
        .unwrap()
        .get(0)
    };

    // Refusals.
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/maintenance/app/vacuum",
            json!({"datetime": "2026-11-30 10:00:00"}),
            406,
            "Parameter 'datetime' is malformed.",
        ),
        (
            "/maintenance/app/vacuum",
            json!({"datetime": "2026-02-30T10:00:00Z"}),
            406,
            "Parameter 'datetime' is malformed.",
        ),
        (
            "/maintenance/app/vacuum",
            json!({"mode": ""}),
            406,
            "Parameter 'mode' is malformed.",
        ),
        (
            "/maintenance/app/vacuum",
            json!({"mode": "full; DROP TABLE app.t"}),
            406,
            "Parameter 'mode' is malformed.",
        ),
        (
            "/maintenance/app/vacuum",
            json!([1]),
            406,
            "The body must be a JSON object.",
        ),
        (
            "/maintenance/nodb/analyze",
            json!({}),
            404,
            "Database nodb not found",
        ),
        (
            "/maintenance/app/schema/app/table/nope/analyze",
            json!({}),
            404,
            "Table app.nope not found",
        ),
        (
            "/maintenance/app/schema/app/index/nope/reindex",
            json!({}),
            404,
            "Index app.nope not found",
        ),
    ];
    for (path, body, status, message) in cases {
        let (code, r) = post(&agent, &key, path, body.clone());
        assert_eq!(
            (code, r["error"].as_str().unwrap_or("")),
            (status, message),
            "{path} {body}"
        );
    }
    assert_eq!(
        error(&Signed::get("/maintenance/app/vacuum").send(&agent, &key)).0,
        405
    );

    // An ANALYZE a few seconds ahead: listed `todo`, runs at its time.
    let when = at(5);
    let (code, r) = post(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/v/analyze",
        json!({"datetime": when}),
    );
    assert_eq!(code, 200, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    // The same again: a clear 409.
    let (code, dup) = post(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/v/analyze",
        json!({"datetime": when}),
    );
    assert_eq!(
        (code, dup),
        (409, json!({"error": "Task id already exists"}))
    );
    let (code, rows) = get(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/v/analyze/scheduled",
    );
    assert_eq!(code, 200);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        row,
        json!({"id": id, "dbname": "app", "schema": "app", "table": "v", "index": null, "mode": null, "datetime": when, "status": row["status"]})
    );
    // Filtered lists: other databases' and other tables' lists do not show it.
    assert!(status_in(&agent, &key, "/maintenance/postgres/analyze/scheduled", &id).is_none());
    assert!(status_in(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/u/analyze/scheduled",
        &id
    )
    .is_none());
    assert!(status_in(&agent, &key, "/maintenance/app/vacuum/scheduled", &id).is_none());
    assert!(status_in(&agent, &key, "/maintenance/analyze/scheduled", &id).is_some());
    assert!(status_in(&agent, &key, "/maintenance/app/analyze/scheduled", &id).is_some());

    // One on u just before it, canceled before its time: it never runs.
    let (code, r) = post(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/u/analyze",
        json!({"datetime": at(4)}),
    );
    assert_eq!(code, 200);
    let canceled = r["id"].as_str().unwrap().to_string();
    // The type in the path is checked.
    assert_eq!(
        delete(&agent, &key, &format!("/maintenance/vacuum/{canceled}")),
        (404, json!({"error": "Scheduled operation not found"}))
    );
    assert_eq!(
        delete(&agent, &key, &format!("/maintenance/analyze/{canceled}")),
        (200, json!({"response": "ok"}))
    );
    assert_eq!(
        delete(&agent, &key, &format!("/maintenance/analyze/{canceled}")).0,
        404,
        "ended"
    );
    assert_eq!(delete(&agent, &key, "/maintenance/analyze/ffffffff").0, 404);

    assert!(
        eventually(Duration::from_secs(30), || last_analyze(&mut app, "v")
            .is_some()),
        "the scheduled ANALYZE did not run"
    );
    let ran: chrono::DateTime<chrono::Utc> = last_analyze(&mut app, "v").unwrap().into();
    let due = chrono::DateTime::parse_from_rfc3339(&when).unwrap();
    assert!(ran >= due, "ran at {ran}, before its time {due}");
    assert!(reaches(
        &agent,
        &key,
        "/maintenance/analyze/scheduled",
        &id,
        "done",
        10
    ),);
    // u's task was due first and canceled: it never ran.
    assert_eq!(last_analyze(&mut app, "u"), None);

    // A running VACUUM FULL canceled: another session holds a lock on the
    // table, so the task is `doing` (its backend waiting) until canceled.
    let (mut holder, running) = blocked_vacuum_full(&pg, &agent, &key, "big");
    let backend = || -> Option<i32> {
        pg.client()
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'temboard-agent task' AND query LIKE 'VACUUM%'",
                &[],
            )
            .unwrap()
            .map(|r| r.get(0))
    };
    assert!(
        eventually(Duration::from_secs(30), || backend().is_some()),
        "the VACUUM FULL never started"
    );
    let pid = backend().unwrap();
    assert_eq!(
        status_in(&agent, &key, "/maintenance/app/vacuum/scheduled", &running).as_deref(),
        Some("doing")
    );
    // The probe worker answers meanwhile: the task is not on its pool.
    assert_eq!(Signed::get("/activity").send(&agent, &key).status, 200);
    // The pages too: the table waited for by the VACUUM FULL's exclusive
    // lock is measured from the catalog instead of waiting behind it.
    let (code, sc) = get(&agent, &key, "/maintenance/app/schema/app");
    assert_eq!(code, 200, "{sc}");
    let big = sc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "big")
        .unwrap()
        .clone();
    assert!(big["total_bytes"].as_i64().unwrap() > 0, "{big}");
    assert_eq!(get(&agent, &key, "/maintenance/app").0, 200);
    // One task per database: an ANALYZE of app.w due now waits for the
    // VACUUM FULL, while one in the database postgres, due after it, runs.
    let (code, r) = post(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/w/analyze",
        json!({}),
    );
    assert_eq!(code, 200, "{r}");
    let waiting = r["id"].as_str().unwrap().to_string();
    pg.client()
        .batch_execute("CREATE TABLE other (x int)")
        .unwrap();
    let (code, r) = post(
        &agent,
        &key,
        "/maintenance/postgres/schema/public/table/other/analyze",
        json!({"datetime": at(1)}),
    );
    assert_eq!(code, 200, "{r}");
    let other = r["id"].as_str().unwrap().to_string();
    assert!(reaches(
        &agent,
        &key,
        "/maintenance/postgres/analyze/scheduled",
        &other,
        "done",
        30
    ));
    assert_eq!(
        status_in(&agent, &key, "/maintenance/app/analyze/scheduled", &waiting).as_deref(),
        Some("todo"),
        "a second task ran in a database busy with one"
    );
    assert_eq!(last_analyze(&mut app, "w"), None);
    assert_eq!(
        delete(&agent, &key, &format!("/maintenance/vacuum/{running}")),
        (200, json!({"response": "ok"}))
    );
    assert!(
        reaches(
            &agent,
            &key,
            "/maintenance/app/vacuum/scheduled",
            &running,
            "canceled",
            20
        ),
        "{:?}",
        status_in(&agent, &key, "/maintenance/app/vacuum/scheduled", &running)
    );
    let alive: i64 = pg
        .client()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .unwrap()
        .get(0);
    assert_eq!(alive, 0, "the canceled task's backend is gone");
    holder.batch_execute("COMMIT").unwrap();
    // The database is free again: the waiting ANALYZE runs.
    assert!(eventually(Duration::from_secs(30), || last_analyze(
        &mut app, "w"
    )
    .is_some()));
    let op = &operations_of(&agent, &key, "vacuum")[0];
    assert_eq!(op["state"], "FAILED", "{op}");
    assert!(
        op["reason"]
            .as_str()
            .unwrap()
            .contains("canceling statement due to user request"),
        "{op}"
    );

    // Notifications, each with its user: scheduled by maud, canceled by dora.
    let m = messages(&agent, &key);
    let has = |user: &str, text: &str| m.iter().any(|(u, t)| u == user && t == text);
    assert!(
        has(
            "maud",
            &format!("Maintenance ANALYZE of app.app.v scheduled for {when}")
        ),
        "{m:?}"
    );
    assert!(
        has("maud", "Maintenance ANALYZE of app.app.v started"),
        "{m:?}"
    );
    assert!(
        has("maud", "Maintenance ANALYZE of app.app.v done"),
        "{m:?}"
    );
    assert!(
        has("dora", "Maintenance ANALYZE of app.app.u canceled"),
        "{m:?}"
    );
    assert!(
        has("dora", "Maintenance VACUUM (FULL) of app.app.big canceled"),
        "{m:?}"
    );
}

#[test]
fn a_killed_task_worker_aborts_its_task_and_later_tasks_survive_a_restart() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut app = setup_app(&pg);
    app.batch_execute("CREATE TABLE app.w (x int)").unwrap();
    let mut agent = agent_for(&pg, &public);

    // A VACUUM FULL waiting on a lock another session holds: `doing`.
    let (mut holder, id) = blocked_vacuum_full(&pg, &agent, &key, "t");
    let list = "/maintenance/app/vacuum/scheduled";
    let worker = agent.worker_pid("task").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The API answers throughout.
    let started = Instant::now();
    let mut answered = 0;
    // At least one round right after the kill (a do-while): a restart
    // faster than the first status read must not leave nothing checked.
    loop {
        assert_eq!(agent.get("/status").unwrap().status, 200);
        assert_eq!(Signed::get("/activity").send(&agent, &key).status, 200);
        answered += 1;
        if status_in(&agent, &key, list, &id).as_deref() != Some("doing") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still doing");
    }
    assert!(answered >= 1);
    assert_eq!(
        status_in(&agent, &key, list, &id).as_deref(),
        Some("aborted")
    );
    println!("{answered} rounds of /status and /activity answered while the task worker restarted");
    let op = &operations_of(&agent, &key, "vacuum")[0];
    assert_eq!(op["state"], "FAILED", "{op}");
    assert!(agent.worker_pid("task").is_some_and(|p| p != worker));
    // The killed worker's backend does not go on: terminated by the next
    // task worker (or gone by itself on PostgreSQL 14+).
    assert!(
        eventually(Duration::from_secs(20), || {
            let n: i64 = pg
                .client()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent task'",
                    &[],
                )
                .unwrap()
                .get(0);
            n == 0
        }),
        "the aborted task's backend is still there"
    );
    holder.batch_execute("COMMIT").unwrap();
    assert!(messages(&agent, &key)
        .iter()
        .any(|(u, t)| u == "maud" && t == "Maintenance VACUUM (FULL) of app.app.t aborted"),);

    // A task for later survives a restart of the whole agent and runs.
    let when = at(6);
    let (code, r) = post(
        &agent,
        &key,
        "/maintenance/app/schema/app/table/w/analyze",
        json!({"datetime": when}),
    );
    assert_eq!(code, 200, "{r}");
    let later = r["id"].as_str().unwrap().to_string();
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(Duration::from_secs(10)).unwrap();
    let files = std::mem::replace(&mut agent.files, AgentFiles::new(None));
    drop(agent);
    let agent = Agent::start(files);
    assert!(status_in(&agent, &key, "/maintenance/app/analyze/scheduled", &later).is_some());
    assert!(
        reaches(
            &agent,
            &key,
            "/maintenance/app/analyze/scheduled",
            &later,
            "done",
            40
        ),
        "{:?}",
        status_in(&agent, &key, "/maintenance/app/analyze/scheduled", &later)
    );
    let analyzed: Option<std::time::SystemTime> = app
        .query_one(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'w'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(analyzed.is_some());
}

#[test]
fn a_role_without_superuser_gets_the_same_estimates_through_pg_stats() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut app = setup_app(&pg);
    app.batch_execute(
        "DELETE FROM app.t WHERE id % 4 <> 0; ANALYZE app.t;
         CREATE ROLE reader LOGIN;
         GRANT USAGE ON SCHEMA app TO reader;
         GRANT SELECT ON ALL TABLES IN SCHEMA app TO reader;",
    )
    .unwrap();
    let figures = |agent: &Agent| {
        let (code, tp) = get(agent, &key, "/maintenance/app/schema/app/table/t");
        assert_eq!(code, 200, "{tp}");
        let pk = tp["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "t_pkey")
            .unwrap()["bloat_bytes"]
            .clone();
        let sizes =
            ["total_bytes", "index_bytes", "toast_bytes", "table_bytes"].map(|k| tp[k].clone());
        (tp["bloat_bytes"].clone(), pk, sizes)
    };
    let superuser = figures(&agent_for(&pg, &public));
    let mut files = signed_files(&pg, &public, PLUGINS);
    files.set("postgresql", "user", "reader");
    files.write();
    let agent = Agent::start(files);
    let reader = figures(&agent);
    assert!(superuser.0.as_f64().unwrap() > 0.0, "{superuser:?}");
    assert_eq!(
        reader, superuser,
        "pg_statistic (superuser) and pg_stats (reader), or the sizes from the files (superuser) and \
         through SQL (reader, who may not read data_directory), disagree"
    );
    // Issue #31: the reader may not know where the data directory is; the
    // sizes come through SQL, said once.
    figures(&agent);
    let log = agent.log();
    assert_eq!(
        log.matches("sizes are read through SQL").count(),
        1,
        "{log}"
    );
}

#[test]
fn the_maintenance_pages_accept_what_the_real_toolkit_signs() {
    let (public, _) = test_keys();
    let pg = PgCluster::start();
    let _app = setup_app(&pg);
    let agent = agent_for(&pg, &public);
    // The UI's maintenance pages: sizes, lists polled, a VACUUM and a
    // REINDEX scheduled (the keys it sends), the same VACUUM again.
    let when = at(3600);
    let vacuum = json!({"datetime": when, "mode": "full,analyze"}).to_string();
    let reindex = json!({"datetime": when}).to_string();
    let spec = json!([
        {"method": "GET", "path": "/maintenance"},
        {"method": "GET", "path": "/maintenance/app"},
        {"method": "GET", "path": "/maintenance/app/schema/app"},
        {"method": "GET", "path": "/maintenance/app/schema/app/table/t"},
        {"method": "POST", "path": "/maintenance/app/schema/app/table/t/vacuum", "body": vacuum},
        {"method": "POST", "path": "/maintenance/app/schema/app/table/t/vacuum", "body": vacuum},
        {"method": "POST", "path": "/maintenance/app/schema/app/index/t_pkey/reindex", "body": reindex},
        {"method": "GET", "path": "/maintenance/app/vacuum/scheduled"},
        {"method": "GET", "path": "/maintenance/app/schema/app/table/t/vacuum/scheduled"},
        {"method": "GET", "path": "/maintenance/app/schema/app/reindex/scheduled"},
        {"method": "GET", "path": "/maintenance/app/schema/app/table/t/analyze/scheduled"},
    ]);
    let a = toolkit_requests(&agent, &spec);
    for (i, answer) in a.iter().enumerate() {
        let want = if i == 5 { 409 } else { 200 };
        assert_eq!(answer["status"], want, "{i}: {answer}");
    }
    assert_eq!(a[0]["body"]["databases"][0]["datname"], "app");
    assert_eq!(a[3]["body"]["indexes"].as_array().unwrap().len(), 3);
    let vacuum_id = a[4]["body"]["id"].as_str().unwrap().to_string();
    let reindex_id = a[6]["body"]["id"].as_str().unwrap().to_string();
    assert_eq!(a[5]["body"], json!({"error": "Task id already exists"}));
    assert_eq!(
        a[8]["body"],
        json!([{"id": vacuum_id, "dbname": "app", "schema": "app", "table": "t", "index": null,
                "mode": "full,analyze", "datetime": when, "status": "todo"}])
    );
    assert_eq!(a[7]["body"], a[8]["body"]);
    assert_eq!(
        a[9]["body"],
        json!([{"id": reindex_id, "dbname": "app", "schema": "app", "table": null, "index": "t_pkey",
                "mode": null, "datetime": when, "status": "todo"}])
    );
    assert_eq!(a[10]["body"], json!([]));
    // Every other scheduling route answers its id, and the lists show them.
    let later = json!({"datetime": when}).to_string();
    let spec = json!([
        {"method": "POST", "path": "/maintenance/app/vacuum", "body": later},
        {"method": "POST", "path": "/maintenance/app/analyze", "body": later},
        {"method": "POST", "path": "/maintenance/app/reindex", "body": later},
        {"method": "POST", "path": "/maintenance/app/schema/app/table/t/analyze", "body": later},
        {"method": "POST", "path": "/maintenance/app/schema/app/table/t/reindex", "body": later},
        {"method": "GET", "path": "/maintenance/app/analyze/scheduled"},
        {"method": "GET", "path": "/maintenance/reindex/scheduled"},
    ]);
    let b = toolkit_requests(&agent, &spec);
    for answer in &b[..5] {
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"]["id"].as_str().unwrap().len(), 8, "{answer}");
    }
    let ids = |i: usize| -> Vec<String> {
        b[i]["body"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(5).len(), 2, "{}", b[5]);
    assert_eq!(
        ids(6).len(),
        3,
        "database, table and index REINDEX: {}",
        b[6]
    );

    // Both canceled, as the UI's buttons do.
    let spec = json!([
        {"method": "DELETE", "path": format!("/maintenance/vacuum/{vacuum_id}")},
        {"method": "DELETE", "path": format!("/maintenance/reindex/{reindex_id}")},
        {"method": "GET", "path": "/maintenance/app/vacuum/scheduled"},
    ]);
    let a = toolkit_requests(&agent, &spec);
    assert_eq!(a[0]["body"], json!({"response": "ok"}), "{}", a[0]);
    assert_eq!(a[1]["body"], json!({"response": "ok"}), "{}", a[1]);
    assert_eq!(a[2]["body"][0]["status"], "canceled", "{}", a[2]);
}

/// Issue #31: index definitions are kept between pages, and a rename (of
/// the index, its table's column, the table) shows at the next page.
#[test]
fn kept_index_definitions_follow_renames() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_for(&pg, &public);
    let mut c = pg.client();
    c.batch_execute("CREATE TABLE kept (a int, b int); CREATE INDEX kept_b ON kept (b)")
        .unwrap();
    let def = |agent: &Agent| {
        let (code, page) = get(agent, &key, "/maintenance/postgres/schema/public");
        assert_eq!(code, 200, "{page}");
        page["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["tablename"] == "kept" || i["tablename"] == "still")
            .map(|i| i["def"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        def(&agent),
        "CREATE INDEX kept_b ON public.kept USING btree (b)"
    );
    assert_eq!(
        def(&agent),
        "CREATE INDEX kept_b ON public.kept USING btree (b)"
    );
    c.batch_execute("ALTER TABLE kept RENAME COLUMN b TO c")
        .unwrap();
    assert_eq!(
        def(&agent),
        "CREATE INDEX kept_b ON public.kept USING btree (c)"
    );
    c.batch_execute("ALTER INDEX kept_b RENAME TO kept_c")
        .unwrap();
    assert_eq!(
        def(&agent),
        "CREATE INDEX kept_c ON public.kept USING btree (c)"
    );
    c.batch_execute("ALTER TABLE kept RENAME TO still").unwrap();
    assert_eq!(
        def(&agent),
        "CREATE INDEX kept_c ON public.still USING btree (c)"
    );
}

/// Issue #31: a role that may read `data_directory` (pg_monitor, through
/// pg_read_all_settings) gets sizes from the files; one that is a member of
/// pg_read_all_settings without inheriting its rights gets them through
/// SQL (PostgreSQL 15 would refuse it `data_directory`), never an error.
#[test]
fn roles_that_may_or_may_not_read_the_data_directory_get_the_same_sizes() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut c = pg.client();
    c.batch_execute(
        "CREATE TABLE sized (id int PRIMARY KEY, v text);
         INSERT INTO sized SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
         CREATE ROLE noinherit LOGIN NOINHERIT IN ROLE pg_read_all_settings;
         CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
         GRANT SELECT ON sized TO noinherit, monitor;",
    )
    .unwrap();
    let expected: i64 = c
        .query_one("SELECT pg_total_relation_size('sized')", &[])
        .unwrap()
        .get(0);
    for (role, through_sql) in [("noinherit", true), ("monitor", false)] {
        let mut files = signed_files(&pg, &public, PLUGINS);
        files.set("postgresql", "user", role);
        files.write();
        let agent = Agent::start(files);
        let (code, page) = get(
            &agent,
            &key,
            "/maintenance/postgres/schema/public/table/sized",
        );
        assert_eq!(code, 200, "{role}: {page}");
        assert_eq!(
            page["total_bytes"].as_i64(),
            Some(expected),
            "{role}: {page}"
        );
        assert_eq!(
            agent.log().contains("sizes are read through SQL"),
            through_sql,
            "{role}: {}",
            agent.log()
        );
    }
}

/// The cluster behind the configured socket is replaced (a `pg_upgrade`'s
/// new cluster on the old port): the agent checks the new one's identity
/// against its data directory, and sizes still come from the files, to the
/// byte.
#[test]
fn another_cluster_behind_the_same_socket_is_measured_from_its_files() {
    let (public, key) = test_keys();
    let mut old = PgCluster::start();
    let agent = agent_for(&old, &public);
    let database_bytes = |pg: &PgCluster| -> i64 {
        pg.client()
            .query_one("SELECT pg_database_size('postgres')", &[])
            .unwrap()
            .get(0)
    };
    let (code, page) = get(&agent, &key, "/maintenance/postgres");
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["total_bytes"].as_i64(), Some(database_bytes(&old)));

    let system = |pg: &PgCluster| -> i64 {
        pg.client()
            .query_one("SELECT system_identifier FROM pg_control_system()", &[])
            .unwrap()
            .get(0)
    };
    let old_system = system(&old);
    let mut new = PgCluster::start();
    new.stop();
    new.take_socket_of(&old);
    old.stop();
    new.start_again();
    // Through the old cluster's socket: the new one is there now.
    let reached = &old;
    assert_ne!(system(reached), old_system, "another cluster");
    reached
        .client()
        .batch_execute("CREATE TABLE only_here AS SELECT g FROM generate_series(1, 10000) g")
        .unwrap();
    // The pooled connections to the old cluster are gone: the next pages
    // connect again.
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            let (code, page) = get(&agent, &key, "/maintenance/postgres");
            last = page;
            code == 200 && last["total_bytes"].as_i64() == Some(database_bytes(reached))
        }),
        "{last}"
    );
    let (_, schema) = get(&agent, &key, "/maintenance/postgres/schema/public");
    assert!(
        schema["tables"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "only_here")),
        "{schema}"
    );
    assert!(!agent.log().contains("read through SQL"), "{}", agent.log());
}
