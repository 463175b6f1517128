//! The pgconf plugin in the temBoard 9.x contract (issue #19, facts 9.x
//! section 6) against the real binary and PostgreSQL, from signed
//! requests: the current settings routes (shapes, `ALTER SYSTEM` effects,
//! PostgreSQL's refusals as 406, notifications with the signed user) and
//! the deprecated `/pgconf/configuration*` routes as the UI 9.0.1 calls
//! them, beside the unchanged 2.x answers.

mod common;

use std::time::Duration;

use common::signed::*;
use common::*;
use serde_json::{json, Value};

/// `SHOW name` on a new connection (which starts with the configuration
/// the postmaster runs with).
fn show(pg: &PgCluster, name: &str) -> String {
    pg.client()
        .query_one(&format!("SHOW {name}"), &[])
        .unwrap()
        .get(0)
}

fn messages(agent: &Agent, key: &rsa::RsaPrivateKey) -> Vec<(String, String)> {
    notification_pairs(agent, key)
}

#[test]
fn pgconf_settings_routes_in_the_9x_contract() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_key(Some(&pg), &public);
    let post = |target: &str, body: &str| {
        Signed {
            user: "dora",
            ..Signed::post(target, body.as_bytes())
        }
        .send(&agent, &key)
    };

    // GET /pgconf/settings: one row per pg_settings row, with sources.
    let r = Signed::get("/pgconf/settings").send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let all = r.json();
    let rows = all.as_array().unwrap();
    assert!(rows.len() > 200, "{} rows", rows.len());
    let find = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let sb = find("shared_buffers");
    assert_eq!(
        keys(&sb),
        sorted(&[
            "category",
            "name",
            "setting",
            "current_setting",
            "unit",
            "vartype",
            "min_val",
            "max_val",
            "enumvals",
            "context",
            "desc",
            "boot_val",
            "reset_val",
            "pending_restart",
            "sources"
        ])
    );
    assert_eq!(sb["setting"], "16384");
    assert_eq!(sb["current_setting"], "128MB");
    assert_eq!(sb["unit"], "8kB");
    assert_eq!(sb["vartype"], "integer");
    assert_eq!(sb["context"], "postmaster");
    assert_eq!(sb["pending_restart"], false);
    assert!(sb["enumvals"].is_null());
    assert!(find("wal_level")["enumvals"].as_array().unwrap().len() >= 3);
    // initdb writes max_connections into postgresql.conf: a source.
    let mc = find("max_connections");
    let src = mc["sources"].as_array().unwrap();
    assert!(
        src.iter().any(|s| s["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("postgresql.conf"))
            && s["applied"] == true
            && s["line"].is_u64()),
        "{mc}"
    );

    // POST /pgconf/settings: 200 with an empty body, the value in force.
    let before = show(&pg, "work_mem");
    let r = post("/pgconf/settings", r#"{"work_mem": "8MB"}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(
        eventually(Duration::from_secs(30), || show(&pg, "work_mem") == "8MB"),
        "work_mem not reloaded"
    );
    let notes = messages(&agent, &key);
    assert!(
        notes.contains(&(
            "dora".into(),
            format!("Setting 'work_mem' changed: '{before}' -> '8MB'")
        )),
        "{notes:?}"
    );
    assert!(notes.contains(&("dora".into(), "PostgreSQL reload".into())));
    // A number is written out (9.0.1: 500).
    let r = post("/pgconf/settings", r#"{"work_mem": 16384}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(eventually(Duration::from_secs(30), || show(
        &pg, "work_mem"
    ) == "16MB"));
    // Refusals, with the 9.x messages and PostgreSQL's own.
    for (body, expected) in [
        ("[]", "Requires a mapping of settings and values."),
        ("{}", "No settings."),
        (r#"{"work_mem": null}"#, "Setting value is required."),
    ] {
        assert_eq!(
            error(&post("/pgconf/settings", body)),
            (406, expected.into())
        );
    }
    let long = format!("{{\"work_mem\": \"{}\"}}", "1".repeat(1100));
    assert_eq!(
        error(&post("/pgconf/settings", &long)),
        (406, "Setting value is too long.".into())
    );
    let (code, text) = error(&post("/pgconf/settings", r#"{"work_mem": "banana"}"#));
    assert_eq!(code, 406);
    // libpq's text, as psycopg2's pgerror gave it to the 9.x agent.
    assert!(
        text.starts_with("ERROR:  invalid value for parameter \"work_mem\": \"banana\"\n"),
        "{text:?}"
    );
    let (code, text) = error(&post(
        "/pgconf/settings",
        r#"{"x; DROP TABLE pg_class; --": "1"}"#,
    ));
    assert_eq!(code, 406);
    assert!(
        text.contains("unrecognized configuration parameter"),
        "{text}"
    );

    // reset / DELETE / reload.
    let auto = pg.data().join("postgresql.auto.conf");
    assert!(std::fs::read_to_string(&auto).unwrap().contains("work_mem"));
    let r = post("/pgconf/settings/work_mem/reset", "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(!std::fs::read_to_string(&auto).unwrap().contains("work_mem"));
    post("/pgconf/settings", r#"{"work_mem": "12MB"}"#);
    let r = Signed {
        method: "DELETE",
        ..Signed::get("/pgconf/settings/work_mem")
    }
    .send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(!std::fs::read_to_string(&auto).unwrap().contains("work_mem"));
    let r = Signed {
        method: "DELETE",
        ..Signed::get("/pgconf/settings/no_such_setting")
    }
    .send(&agent, &key);
    assert_eq!(r.status, 406);
    assert!(error(&r).1.contains("unrecognized configuration parameter"));
    let r = post("/pgconf/reload", "");
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn deprecated_pgconf_routes_as_the_ui_9_calls_them() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_key(Some(&pg), &public);
    let get = |target: &str| {
        let r = Signed::get(target).send(&agent, &key);
        assert_eq!(
            r.status,
            200,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    };

    let cats = get("/pgconf/configuration/categories");
    let list = cats["categories"].as_array().unwrap();
    assert!(list.contains(&json!("Resource Usage / Memory")));
    let mut sorted_list = list.clone();
    sorted_list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(*list, sorted_list);

    // The UI's proxy decodes %2F and keeps `+` for spaces.
    let groups = get("/pgconf/configuration/category/Resource+Usage+/+Memory");
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["category"], "Resource Usage / Memory");
    let sb = groups[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "shared_buffers")
        .cloned()
        .unwrap();
    assert_eq!(
        keys(&sb),
        sorted(&[
            "name",
            "setting",
            "setting_raw",
            "unit",
            "vartype",
            "min_val",
            "max_val",
            "boot_val",
            "reset_val",
            "enumvals",
            "context",
            "desc",
            "pending_restart"
        ])
    );
    assert_eq!(sb["setting_raw"], "128MB");
    // The same with the proxy's %2F kept: one decoding, same answer.
    assert_eq!(
        get("/pgconf/configuration/category/Resource+Usage+%2F+Memory"),
        json!(groups)
    );
    assert_eq!(get("/pgconf/configuration/category/Nope"), json!([]));
    let wal = get("/pgconf/configuration?filter=wal_level");
    let enumvals = wal[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "wal_level")
        .unwrap()["enumvals"]
        .clone();
    assert!(enumvals.as_str().unwrap().starts_with('{'), "{enumvals}");
    let r = Signed::get("/pgconf/configuration?filter=ab").send(&agent, &key);
    assert_eq!(error(&r), (406, "Parameter 'filter' is malformed".into()));
    // Bound, never interpolated: a quote is just text that matches nothing.
    assert_eq!(
        get("/pgconf/configuration?filter=wal%27%20OR%201%3D1%20--"),
        json!([])
    );

    // POST /pgconf/configuration as the UI sends it, then the status.
    let post =
        |body: &str| Signed::post("/pgconf/configuration", body.as_bytes()).send(&agent, &key);
    let r = post(
        r#"{"settings": [{"name": "shared_buffers", "setting": "256MB"}, {"name": "autovacuum", "setting": "on"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"settings": []}));
    // autovacuum was already on: skipped, not written (as 10.0).
    let auto = std::fs::read_to_string(pg.data().join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("shared_buffers"), "{auto}");
    assert!(!auto.contains("autovacuum"), "{auto}");
    let mut status = Value::Null;
    assert!(
        eventually(Duration::from_secs(30), || {
            status = get("/pgconf/configuration/status");
            status["restart_pending"] == true
        }),
        "{status}"
    );
    assert!(status["restart_changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "shared_buffers"));
    assert_eq!(post(r#"{"settings": []}"#).json(), json!({"settings": []}));
    assert_eq!(
        error(&post("{}")),
        (406, "Parameter 'settings' not sent.".into())
    );
    // An empty setting resets it.
    let r = post(r#"{"settings": [{"name": "shared_buffers", "setting": ""}]}"#);
    assert_eq!(r.status, 200);
    let auto = std::fs::read_to_string(pg.data().join("postgresql.auto.conf")).unwrap();
    assert!(!auto.contains("shared_buffers"), "{auto}");

    // 2.x keeps its own shape on the same path.
    let session = agent.login("alice", "alice");
    let v2 = agent
        .get_with_session("/pgconf/configuration?filter=shared_buffers", &session)
        .json();
    assert!(v2[0]["rows"][0].get("auto_val").is_some(), "{v2}");
    let r = agent.get_with_session("/pgconf/settings", &session);
    assert_eq!(r.status, 404);
}
