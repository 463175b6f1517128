//! First pieces of the hardening suite (issue #9): old TLS versions refused,
//! silent TCP clients do not hold the API.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn s_client(port: u16, version_flag: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version_flag,
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let negotiated =
        text.contains("Protocol  :") || text.contains("New, TLSv") || text.contains("Cipher is");
    let refused = text.contains("Cipher is (NONE)")
        || text.contains("alert")
        || text.contains("no protocols available");
    (negotiated && !refused, text)
}

#[test]
fn only_tls_12_and_13_are_accepted() {
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("openssl is needed for this test (apt-get install openssl)");
    }
    let agent = Agent::start(AgentFiles::new(None));
    for old in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(agent.port, old);
        assert!(!ok, "{old} accepted:\n{text}");
    }
    for good in ["-tls1_2", "-tls1_3"] {
        let (ok, text) = s_client(agent.port, good);
        assert!(ok, "{good} refused:\n{text}");
    }
}

/// The cipher suite `openssl s_client` settles on with these extra flags,
/// or None when the handshake failed.
fn negotiated_suite(port: u16, flags: &[&str]) -> (Option<String>, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256"
    let suite = text
        .lines()
        .find_map(|l| l.strip_prefix("New, ")?.split_once(", Cipher is "))
        .map(|(_, c)| c.trim().to_string())
        .filter(|c| c != "(NONE)");
    (suite, text)
}

#[test]
fn the_agent_picks_aes_128_first_and_still_serves_every_suite() {
    let agent = Agent::start(AgentFiles::new(None));
    // OpenSSL lists AES-256 first; the agent's order wins (cheaper
    // handshake, see src/workers/http/tls.rs).
    let (suite, text) = negotiated_suite(agent.port, &["-tls1_3"]);
    assert_eq!(suite.as_deref(), Some("TLS_AES_128_GCM_SHA256"), "{text}");
    // A client that allows only one suite gets it.
    for only in ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"] {
        let (suite, text) = negotiated_suite(agent.port, &["-tls1_3", "-ciphersuites", only]);
        assert_eq!(suite.as_deref(), Some(only), "{text}");
    }
    let (suite, text) = negotiated_suite(
        agent.port,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384",
        ],
    );
    assert!(
        suite
            .as_deref()
            .is_some_and(|s| s.contains("AES256-GCM-SHA384")),
        "{text}"
    );
}

#[test]
fn silent_tcp_clients_do_not_hold_the_api() {
    let agent = Agent::start(AgentFiles::new(None));
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap())
        .collect();
    for _ in 0..20 {
        assert_eq!(agent.get("/status").unwrap().status, 200);
    }
    drop(idle);
}
