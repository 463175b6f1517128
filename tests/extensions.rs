//! The extensions plugin (added through the plugin contract alone) against a
//! real cluster and the real binary: off unless listed, then each database's
//! installed extensions with their default version and pending updates.

mod common;

use common::*;
use serde_json::Value;

fn extension<'a>(doc: &'a Value, dbname: &str, name: &str) -> &'a Value {
    let db = doc["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .find(|d| d["dbname"] == dbname)
        .unwrap_or_else(|| panic!("{dbname} not listed: {doc}"));
    assert_eq!(db["error"], Value::Null, "{db}");
    db["extensions"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {dbname}: {db}"))
}

#[test]
fn off_unless_listed() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let r = agent.get_with_session("/extensions", &s);
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "URL not found.");
}

#[test]
fn lists_installed_extensions_and_pending_updates_per_database() {
    let pg = PgCluster::start();
    let mut admin = pg.client();
    admin.batch_execute("CREATE DATABASE shop").unwrap();
    admin.batch_execute("CREATE EXTENSION citext").unwrap();
    let mut shop = pg.client_to("shop");
    shop.batch_execute("CREATE EXTENSION hstore VERSION '1.4'")
        .unwrap();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "plugins", r#"["activity", "extensions"]"#);
    files.set("temboard", "key", "k3y-for-extensions-0123456789");
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");

    let r = agent.get_with_session("/extensions", &s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let doc = r.json();
    let names: Vec<&str> = doc["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["dbname"].as_str())
        .collect();
    assert_eq!(names, ["postgres", "shop"], "templates are left out: {doc}");
    let hstore = extension(&doc, "shop", "hstore");
    assert_eq!(hstore["version"], "1.4");
    assert_eq!(hstore["default_version"], "1.8");
    assert_eq!(hstore["update_available"], true);
    assert_eq!(hstore["schema"], "public");
    let citext = extension(&doc, "postgres", "citext");
    assert_eq!(citext["update_available"], false, "{citext}");
    assert_eq!(citext["version"], citext["default_version"]);
    extension(&doc, "postgres", "plpgsql");

    // Once updated, nothing is pending; the agent key reads it too.
    shop.batch_execute("ALTER EXTENSION hstore UPDATE").unwrap();
    let r = agent
        .request(
            "GET",
            "/extensions",
            &[("X-TemBoard-Agent-Key", "k3y-for-extensions-0123456789")],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let doc = r.json();
    let hstore = extension(&doc, "shop", "hstore");
    assert_eq!(hstore["version"], "1.8");
    assert_eq!(hstore["update_available"], false);

    // One connection per database, each closed after use: the agent stays
    // within its share of max_connections.
    let open: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(open <= 4, "{open} agent connections");
    let in_shop: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent' AND datname = 'shop'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(in_shop, 0, "the connection to shop was closed after use");
}

#[test]
fn an_unreadable_database_is_reported_not_fatal() {
    let pg = PgCluster::start();
    let mut admin = pg.client();
    admin.batch_execute("CREATE DATABASE closed").unwrap();
    admin
        .batch_execute(
            "REVOKE CONNECT ON DATABASE closed FROM PUBLIC;
             CREATE ROLE watcher LOGIN PASSWORD 'watcher-pass' IN ROLE pg_monitor",
        )
        .unwrap();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "plugins", r#"["extensions"]"#);
    files.set("postgresql", "user", "watcher");
    files.set("postgresql", "password", "watcher-pass");
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");
    let r = agent.get_with_session("/extensions", &s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let doc = r.json();
    let closed = doc["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dbname"] == "closed")
        .unwrap_or_else(|| panic!("closed not listed: {doc}"));
    let error = closed["error"].as_str().unwrap_or_default();
    assert!(error.contains("permission denied"), "{closed}");
    extension(&doc, "postgres", "plpgsql");
}
