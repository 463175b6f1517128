//! The first hour of a new user (issue #17): the usual mistakes get answers
//! that say what to do.

mod common;

use std::io::{Read, Write};

use common::*;

#[test]
fn plain_http_on_the_https_port_gets_a_json_400_naming_the_https_url() {
    let agent = Agent::start(AgentFiles::new(None));
    for _ in 0..20 {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            tcp,
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: curl\r\n\r\n",
            agent.port
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v["error"],
            format!(
                "This port speaks HTTPS, not plain HTTP: use https://127.0.0.1:{}/",
                agent.port
            )
        );
    }
    // HTTPS still answers.
    assert_eq!(agent.get("/status").unwrap().status, 200);
}

#[test]
fn metrics_without_credentials_says_which_credentials_work() {
    let agent = Agent::start(AgentFiles::new(None));
    let r = agent.get("/metrics").unwrap();
    assert_eq!(r.status, 401);
    let text = r.json()["error"].as_str().unwrap().to_string();
    for hint in [
        "X-Session",
        "Bearer",
        "temboard-agent-token",
        "--read-only",
        "X-TemBoard-Agent-Key",
    ] {
        assert!(text.contains(hint), "{hint} missing in: {text}");
    }
    // With a wrong key, the 2.x answer stays.
    let r = agent
        .request("GET", "/metrics", &[("X-TemBoard-Agent-Key", "nope")], None)
        .unwrap();
    assert_eq!(r.status, 401);
}
