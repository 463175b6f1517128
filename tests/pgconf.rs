//! PgConf plugin against a real cluster: settings listing and typing, changes
//! with ALTER SYSTEM, the 2.x messages, pg_hba.conf versions and safety,
//! pg_ident.conf.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["rows"].as_array().unwrap().iter())
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

fn error(r: &HttpResponse) -> (u16, String) {
    (
        r.status,
        r.json()["error"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn settings_listing_types_and_changes() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let r = agent.get_with_session("/pgconf/configuration", &s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let all = r.json();
    let sb = find(&all, "shared_buffers");
    assert_eq!(sb.as_object().unwrap().len(), 15, "{sb}");
    assert_eq!(sb["vartype"], "integer");
    assert_eq!(sb["unit"], "8kB");
    assert_eq!(sb["setting"], 16384);
    assert_eq!(sb["setting_raw"], "128MB");
    assert!(sb["min_val"].is_i64() && sb["max_val"].is_i64());
    assert_eq!(sb["context"], "postmaster");
    let cct = find(&all, "checkpoint_completion_target");
    assert!(cct["setting"].is_f64());
    assert_eq!(find(&all, "autovacuum")["setting"], "on");
    let wl = find(&all, "wal_level");
    assert_eq!(wl["vartype"], "enum");
    assert_eq!(wl["enumvals"], "{minimal,replica,logical}");
    let sp = find(&all, "search_path");
    assert_eq!(sp["vartype"], "string");
    assert!(
        sp["desc"].as_str().unwrap().ends_with(' ') || sp["desc"].as_str().unwrap().contains(". ")
    );
    assert_eq!(find(&all, "unix_socket_permissions")["setting"], "0777");
    // Ordered by category then name; categories route agrees.
    let cats: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = cats.clone();
    sorted.sort();
    assert_eq!(cats, sorted);
    assert_eq!(
        agent
            .get_with_session("/pgconf/configuration/categories", &s)
            .json()["categories"],
        json!(cats)
    );
    let one = agent
        .get_with_session("/pgconf/configuration/category/Autovacuum", &s)
        .json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert!(one[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"].as_str().unwrap().contains("autovacuum")));
    let enc = "Client+Connection+Defaults+%2F+Locale+and+Formatting";
    let loc = agent
        .get_with_session(&format!("/pgconf/configuration/category/{enc}"), &s)
        .json();
    assert_eq!(
        loc[0]["category"],
        "Client Connection Defaults / Locale and Formatting"
    );
    assert_eq!(
        agent
            .get_with_session("/pgconf/configuration/category/Nope", &s)
            .json(),
        json!([])
    );
    let f = agent
        .get_with_session("/pgconf/configuration?filter=wal_level", &s)
        .json();
    assert!(find(&f, "wal_level")["name"] == "wal_level");
    let r = agent.get_with_session("/pgconf/configuration?filter=a'%3B--", &s);
    assert_eq!(error(&r), (406, "Parameter 'filter' is malformed.".into()));

    // A sighup setting: applied after the reload.
    let r = agent.post_json(
        "/pgconf/configuration",
        &json!({"settings": [{"name": "work_mem", "setting": "8MB"}]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"settings": [{"name": "work_mem", "setting": "8MB", "previous_setting": "4MB", "restart": false}]})
    );
    let mut c = pg.client();
    assert!(eventually(Duration::from_secs(5), || c
        .query_one("SHOW work_mem", &[])
        .unwrap()
        .get::<_, String>(0)
        == "8MB"));
    let all = agent.get_with_session("/pgconf/configuration", &s).json();
    assert_eq!(find(&all, "work_mem")["auto_val"], 8192);
    assert_eq!(find(&all, "work_mem")["auto_val_raw"], "8MB");
    // Unchanged: omitted.
    let r = agent.post_json(
        "/pgconf/configuration",
        &json!({"settings": [{"name": "work_mem", "setting": "8MB"}]}),
        Some(&s),
    );
    assert_eq!(r.json(), json!({"settings": []}));
    // A postmaster setting: pending a restart.
    let r = agent.post_json(
        "/pgconf/configuration",
        &json!({"settings": [{"name": "shared_buffers", "setting": "256MB"}]}),
        Some(&s),
    );
    assert_eq!(r.json()["settings"][0]["restart"], true);
    let st = agent
        .get_with_session("/pgconf/configuration/status", &s)
        .json();
    assert_eq!(st["restart_pending"], true);
    let pending = st["restart_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "shared_buffers")
        .unwrap();
    assert_eq!(pending["pending_val"], "256MB");
    assert_eq!(pending.as_object().unwrap().len(), 16);
    // Reset with "", a real, a bool, an enum.
    let r = agent.post_json(
        "/pgconf/configuration",
        &json!({"settings": [
            {"name": "work_mem", "setting": ""},
            {"name": "checkpoint_completion_target", "setting": "0.5"},
            {"name": "autovacuum", "setting": "off"},
            {"name": "log_min_messages", "setting": "'info'"}
        ]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = r.json();
    assert_eq!(got["settings"][0]["setting"], Value::Null);
    assert_eq!(got["settings"][1]["setting"], 0.5);
    assert_eq!(got["settings"][2]["setting"], "off");
    assert_eq!(got["settings"][3]["setting"], "info");
    assert!(eventually(Duration::from_secs(5), || c
        .query_one("SHOW autovacuum", &[])
        .unwrap()
        .get::<_, String>(0)
        == "off"));
    let owned = agent.notification_messages(&s);
    let messages: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert!(
        messages.contains(&"Setting 'work_mem' changed: '4MB' -> '8MB'"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"Setting 'work_mem' changed: '8MB' -> 'None'"),
        "{messages:?}"
    );
    assert!(messages.contains(&"PostgreSQL reload"));
}

#[test]
fn settings_errors_and_injection_attempts() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let post = |body: Value| agent.post_json("/pgconf/configuration", &body, Some(&s));
    assert_eq!(
        error(&post(json!({}))),
        (406, "Parameter 'settings' not sent.".into())
    );
    assert_eq!(
        error(&post(json!({"settings": [{"name": "work_mem"}]}))),
        (406, "setting item malformed.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "no_such_thing", "setting": "1"}]})
        )),
        (406, "Parameter no_such_thing can't be checked.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "work_mem", "setting": 8}]})
        )),
        (406, "Parameter work_mem can't be checked.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "shared_buffers", "setting": "100TB"}]})
        )),
        (406, "shared_buffers: Invalid setting.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "work_mem", "setting": "10kB"}]})
        )),
        (406, "work_mem: Invalid setting.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "work_mem", "setting": "lots"}]})
        )),
        (406, "work_mem: Invalid setting.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "checkpoint_completion_target", "setting": "2.5"}]})
        )),
        (406, "checkpoint_completion_target: Invalid setting.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "autovacuum", "setting": "Maybe"}]})
        )),
        (406, "Invalid setting: maybe.".into())
    );
    assert_eq!(
        error(&post(
            json!({"settings": [{"name": "wal_level", "setting": "extreme"}]})
        )),
        (406, "Invalid setting: extreme.".into())
    );
    // PostgreSQL's own refusal: 408 with its message.
    let r = post(
        json!({"settings": [{"name": "search_path", "setting": "x"}, {"name": "default_text_search_config", "setting": "nope.nope"}]}),
    );
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        error(&r).1.starts_with("default_text_search_config: "),
        "{}",
        error(&r).1
    );
    // SQL-looking names and values change nothing.
    let mut c = pg.client();
    let r = post(json!({"settings": [{"name": "work_mem; DROP TABLE x; --", "setting": "1MB"}]}));
    assert_eq!(error(&r).0, 406);
    let r = post(
        json!({"settings": [{"name": "application_name", "setting": "x'; ALTER SYSTEM SET work_mem = '1GB"}]}),
    );
    assert_eq!(r.status, 200);
    // What the server would load, read from the files now (no reload to
    // wait for): no work_mem escaped from the quoted value.
    let escaped: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(escaped, 0, "value escaped into SQL");
    let auto = std::fs::read_to_string(pg.data().join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("application_name = 'x''; ALTER SYSTEM SET work_mem = ''1GB'"),
        "{auto}"
    );
}

fn hba_path(pg: &PgCluster) -> std::path::PathBuf {
    pg.data().join("pg_hba.conf")
}

#[test]
fn hba_round_trip_versions_and_traversal() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let original = std::fs::read_to_string(hba_path(&pg)).unwrap();
    let read = agent.get_with_session("/pgconf/hba", &s).json();
    assert_eq!(read["filepath"], hba_path(&pg).display().to_string());
    assert_eq!(read["version"], Value::Null);
    let raw = agent.get_with_session("/pgconf/hba/raw", &s).json();
    assert_eq!(raw["content"], original.as_str());

    let entries = json!([
        {"comment": " written by the test", "connection": ""},
        {"connection": "local", "database": "all", "user": "all", "auth_method": "trust"},
        {"connection": "host", "database": "all", "user": "all", "address": "127.0.0.1/32", "auth_method": "trust"},
        {"connection": "host", "database": "all", "user": "all", "address": "10.0.0.0 255.0.0.0", "auth_method": "md5"},
        {"raw": "include_if_exists extra_hba.conf"}
    ]);
    let r = agent.post_json(
        "/pgconf/hba",
        &json!({"entries": entries, "new_version": true}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v1 = r.json()["last_version"].as_str().unwrap().to_string();
    // PostgreSQL itself checks the file: 15 has no include directive in
    // pg_hba.conf (16+ has), and says so for line 5 only.
    let errors = r.json()["errors"].clone();
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert_eq!(errors[0]["line_number"], 5);
    assert!(errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("include_if_exists"));
    let written = std::fs::read_to_string(hba_path(&pg)).unwrap();
    assert_eq!(
        written,
        "# written by the test\r\nlocal  all  all  trust \r\nhost  all  all 127.0.0.1/32 trust \r\nhost  all  all 10.0.0.0 255.0.0.0 md5 \r\ninclude_if_exists extra_hba.conf\r\n"
    );
    let back = agent.get_with_session("/pgconf/hba", &s).json();
    assert_eq!(back["entries"][2]["address"], "127.0.0.1/32");
    assert_eq!(
        back["entries"][4],
        json!({"raw": "include_if_exists extra_hba.conf"})
    );
    // The version holds the original file.
    let ver = agent
        .get_with_session(&format!("/pgconf/hba/raw?version={v1}"), &s)
        .json();
    assert_eq!(ver["content"], original.as_str());
    assert_eq!(ver["version"], v1.as_str());
    // A version of the same second already there: a clear 409, file unchanged.
    let now = chrono::Local::now();
    let taken: Vec<std::path::PathBuf> = (0..3)
        .map(|d| {
            let v = (now + chrono::Duration::seconds(d))
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let p = pg.data().join(format!("pg_hba.conf.{v}"));
            if !p.exists() {
                std::fs::write(&p, "taken").unwrap();
            }
            p
        })
        .collect();
    let again = agent.post_json(
        "/pgconf/hba/raw",
        &json!({"content": "local all all reject\n", "new_version": true}),
        Some(&s),
    );
    assert_eq!(
        again.status,
        409,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert!(error(&again)
        .1
        .starts_with("Unable to create a new version, file "));
    assert_eq!(std::fs::read_to_string(hba_path(&pg)).unwrap(), written);
    for p in taken {
        if std::fs::read_to_string(&p).unwrap_or_default() == "taken" {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    let r = agent.post_json(
        "/pgconf/hba/raw",
        &json!({"content": written, "new_version": true}),
        Some(&s),
    );
    assert_eq!(r.status, 200);
    let v2 = r.json()["last_version"].as_str().unwrap().to_string();
    let versions = agent.get_with_session("/pgconf/hba/versions", &s).json();
    let list: Vec<String> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(list.first(), Some(&v2), "newest first: {list:?}");
    assert!(list.contains(&v1));
    let mut sorted = list.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(list, sorted);

    // Version checks and traversal attempts: nothing outside the directory touched.
    let outside = pg.dir.path().join("victim");
    std::fs::write(&outside, "keep me").unwrap();
    give_to_postgres(&outside);
    for bad in [
        "../victim",
        "2017-01-01T00:00:00/../../victim",
        "..%2F..%2Fvictim",
        "2017-01-01T00%3A00%3A00%2F..%2F..%2Fvictim",
    ] {
        let r = agent.get_with_session(&format!("/pgconf/hba?version={bad}"), &s);
        assert_eq!(
            error(&r),
            (406, "Parameter 'version' is malformed.".into()),
            "{bad}"
        );
        let r = agent
            .request(
                "DELETE",
                &format!("/pgconf/hba?version={bad}"),
                &[("X-Session", &s)],
                None,
            )
            .unwrap();
        assert_eq!(
            error(&r),
            (406, "Parameter 'version' is malformed.".into()),
            "{bad}"
        );
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
    let r = agent.get_with_session("/pgconf/hba?version=2017-02-30T00:00:00", &s);
    assert_eq!(
        error(&r),
        (
            406,
            "Bad version format, should be 'YYYY-MM-DDTHH:mm:ss'".into()
        )
    );
    let r = agent.get_with_session("/pgconf/hba?version=2001-01-01T00:00:00", &s);
    assert_eq!(r.status, 404);
    assert_eq!(
        error(&r).1,
        format!(
            "Version 2001-01-01T00:00:00 of file {} does not exist.",
            hba_path(&pg).display()
        )
    );
    let r = agent
        .request("DELETE", "/pgconf/hba", &[("X-Session", &s)], None)
        .unwrap();
    assert_eq!(
        error(&r),
        (406, "HBA version number must be specified.".into())
    );
    let r = agent
        .request(
            "DELETE",
            &format!("/pgconf/hba?version={v1}"),
            &[("X-Session", &s)],
            None,
        )
        .unwrap();
    assert_eq!(r.json(), json!({"version": v1, "deleted": true}));
    assert_eq!(
        agent
            .request(
                "DELETE",
                &format!("/pgconf/hba?version={v1}"),
                &[("X-Session", &s)],
                None
            )
            .unwrap()
            .status,
        404
    );

    // Invalid entries.
    for (e, msg) in [
        (
            json!([{"connection": "hots", "database": "a", "user": "b", "auth_method": "trust"}]),
            "Invalid connection: hots",
        ),
        (
            json!([{"connection": "host", "database": "a", "user": "b", "auth_method": "trust"}]),
            "An address is required for method 'host'.",
        ),
        (
            json!([{"connection": "local", "database": "a\nhost all all 0.0.0.0/0 trust", "user": "b", "auth_method": "trust"}]),
            "Invalid HBA entry.",
        ),
        (json!("nope"), "Invalid HBA entry."),
    ] {
        let r = agent.post_json("/pgconf/hba", &json!({ "entries": e }), Some(&s));
        assert_eq!(error(&r), (406, msg.to_string()));
    }
    assert_eq!(
        error(&agent.post_json("/pgconf/hba", &json!({}), Some(&s))),
        (406, "Parameter 'entries' not sent.".into())
    );
    assert_eq!(
        error(&agent.post_json("/pgconf/hba/raw", &json!({}), Some(&s))),
        (406, "Parameter 'content' not sent.".into())
    );
    assert_eq!(
        std::fs::read_to_string(hba_path(&pg)).unwrap(),
        written,
        "a refused write changed the file"
    );

    let opts = agent.get_with_session("/pgconf/hba/options", &s).json();
    assert!(opts["databases"]
        .as_array()
        .unwrap()
        .contains(&json!("postgres")));
    assert!(opts["users"]
        .as_array()
        .unwrap()
        .contains(&json!("postgres")));
    assert!(opts["auth_methods"]
        .as_array()
        .unwrap()
        .contains(&json!("scram-sha-256")));
    let owned = agent.notification_messages(&s);
    let messages: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert!(messages.contains(&"HBA file updated"));
    assert!(messages.contains(&format!("HBA file version '{v1}' removed.").as_str()));
}

#[test]
fn hba_write_survives_a_killed_worker() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let a = format!("# A\r\n{}", "local  all  all  trust \r\n".repeat(20_000));
    let b = format!(
        "# B\r\n{}",
        "host  all  all 127.0.0.1/32 trust \r\n".repeat(20_000)
    );
    let original = std::fs::read_to_string(hba_path(&pg)).unwrap();
    let tmp_files = || {
        std::fs::read_dir(pg.data())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    };
    // Rounds go on until kills have landed in the middle of a write (a
    // killed writer leaves its temporary file behind), so the check below
    // is known to have met the case it is about.
    let mut interrupted = 0;
    let mut round = 0u64;
    while interrupted < 2 && round < 40 {
        let content = if round.is_multiple_of(2) { &a } else { &b };
        let (port, cert, s2, body) = (
            agent.port,
            agent.files.cert_pem(),
            s.clone(),
            json!({"content": content}).to_string(),
        );
        let tmp_before = tmp_files();
        let writer = std::thread::spawn(move || {
            https_request(
                port,
                &cert,
                "POST",
                "/pgconf/hba/raw",
                &[("X-Session", &s2)],
                Some(body.as_bytes()),
            )
        });
        // The kill is sent the moment the writer's temporary file appears
        // (watched, not timed): it lands inside the write, between the
        // temporary file's creation and its rename, whenever it can.
        let pid = agent.worker_pid("probe");
        while !writer.is_finished() && tmp_files() <= tmp_before {}
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = writer.join();
        if tmp_files() > tmp_before {
            interrupted += 1;
        }
        let now = std::fs::read_to_string(hba_path(&pg)).unwrap();
        assert!(
            now == a || now == b || now == original,
            "torn pg_hba.conf after a kill ({} bytes)",
            now.len()
        );
        assert!(eventually(Duration::from_secs(5), || agent
            .worker_pid("probe")
            .is_some()));
        // Past the restart policy's healthy_after (2 s), so the next kill
        // is not counted as a crash loop (whose backoff would outgrow the
        // wait above).
        std::thread::sleep(Duration::from_millis(2100));
        round += 1;
    }
    assert!(
        interrupted >= 1,
        "no kill landed during a write in {round} rounds"
    );
    eprintln!("{interrupted} writes interrupted by a kill in {round} rounds");
    // Temporary files of killed writers are cleared by the next write.
    let r = agent.post_json("/pgconf/hba/raw", &json!({"content": a}), Some(&s));
    assert_eq!(r.status, 200);
    let leftovers: Vec<String> = std::fs::read_dir(pg.data())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn pg_ident_round_trip_with_previous() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let path = pg.data().join("pg_ident.conf");
    let original = std::fs::read_to_string(&path).unwrap();
    let r = agent.get_with_session("/pgconf/pg_ident", &s).json();
    assert_eq!(
        r,
        json!({"filepath": path.display().to_string(), "content": original})
    );
    let r = agent.post_json(
        "/pgconf/pg_ident",
        &json!({"content": "mymap  alice  postgres\n", "new_version": true}),
        Some(&s),
    );
    assert_eq!(r.json(), json!({"update": true}));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "mymap  alice  postgres\n"
    );
    assert_eq!(
        std::fs::read_to_string(pg.data().join("pg_ident.conf.previous")).unwrap(),
        original
    );
    assert_eq!(
        error(&agent.post_json("/pgconf/pg_ident", &json!({}), Some(&s))),
        (406, "Parameter 'content' not sent.".into())
    );
}

/// Issue #17: a pooled backend re-reads the files lazily after a reload and
/// then shows the values of a later `ALTER SYSTEM`; the status must show
/// what PostgreSQL runs with.
#[test]
fn status_sees_a_pending_reload_after_a_later_alter_system() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let r = agent.post_json(
        "/pgconf/configuration",
        &json!({"settings": [{"name": "autovacuum", "setting": "off"}]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut c = pg.client();
    c.batch_execute("ALTER SYSTEM SET shared_buffers TO '256MB'")
        .unwrap();
    c.batch_execute("ALTER SYSTEM SET autovacuum TO 'on'")
        .unwrap();
    let st = agent
        .get_with_session("/pgconf/configuration/status", &s)
        .json();
    assert_eq!(st["restart_pending"], true, "{st}");
    assert_eq!(st["reload_pending"], true, "{st}");
    // The running value, not the file's.
    let all = agent
        .get_with_session("/pgconf/configuration?filter=autovacuum", &s)
        .json();
    let text = all.to_string();
    assert!(text.contains("\"setting\":\"off\""), "{text}");
}
