//! Signed temBoard 9.x requests for the tests: the vectors' key pair, keys
//! made by openssl, and a signer that builds the canonical text with the
//! agent's own function and signs with the UI's PSS parameters (the real
//! 9.0.1 toolkit is exercised separately, by tests/helpers/toolkit_client.py).

use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde_json::Value;

use super::*;

/// The signing vectors (tests/fixtures, from the facts).
pub fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/temboard-9x-signing-vectors.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// The vectors' throwaway RSA-2048 test key pair.
pub fn test_keys() -> (String, rsa::RsaPrivateKey) {
    let v = vectors();
    let private =
        rsa::RsaPrivateKey::from_pkcs8_pem(v["private_key_pem_pkcs8"].as_str().unwrap()).unwrap();
    (v["public_key_pem"].as_str().unwrap().to_string(), private)
}

/// Another key pair, made by openssl (what `temboard generate-key` runs).
pub fn other_keys(dir: &std::path::Path) -> (String, rsa::RsaPrivateKey) {
    let key = dir.join("other.key");
    let st = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    let pem = std::fs::read_to_string(&key).unwrap();
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
    use rsa::pkcs8::EncodePublicKey;
    let public = rsa::RsaPublicKey::from(&private)
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    (public, private)
}

/// What a signed request carries, before signing.
pub struct Signed<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub body: Option<&'a [u8]>,
    pub user: &'a str,
    pub date: String,
    pub id: String,
    /// The `Host` signed (what [`KeepAlive::request`] sends by default).
    pub host: &'a str,
}

impl<'a> Signed<'a> {
    pub fn get(target: &'a str) -> Self {
        Signed {
            method: "GET",
            target,
            body: None,
            user: "alice",
            date: chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            id: uuid(),
            host: "localhost",
        }
    }

    /// The headers, signed with `key` (max PSS salt, as the UI signs).
    pub fn headers(&self, key: &rsa::RsaPrivateKey) -> Vec<(String, String)> {
        let mut h = vec![
            ("X-TemBoard-Date".to_string(), self.date.clone()),
            ("X-TemBoard-Request-Id".to_string(), self.id.clone()),
            ("X-TemBoard-User".to_string(), self.user.to_string()),
        ];
        if let Some(b) = self.body {
            h.push(("Content-Type".into(), "application/json".into()));
            // KeepAlive adds Content-Length itself; it is signed all the same.
            let _ = b;
        }
        let mut for_text: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        for_text.push(("Host".into(), self.host.as_bytes().to_vec()));
        if let Some(b) = self.body {
            for_text.push(("Content-Length".into(), b.len().to_string().into_bytes()));
        }
        let refs: Vec<(&str, &[u8])> = for_text
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let text = temboard_agent::signing::canonical(&temboard_agent::signing::Request {
            method: self.method,
            target: self.target,
            headers: &refs,
            body: self.body.unwrap_or(b""),
        })
        .unwrap();
        let bits = rsa::traits::PublicKeyParts::n(key).bits();
        let max_salt = (bits - 1).div_ceil(8) - 32 - 2;
        let signer =
            rsa::pss::BlindedSigningKey::<sha2::Sha256>::new_with_salt_len(key.clone(), max_salt);
        let sig = signer.sign_with_rng(&mut rsa::rand_core::OsRng, &text);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
        h.push(("X-TemBoard-Signature".into(), format!("v1:{b64}")));
        h
    }
}

/// Header lines of a request: (name, value).
pub type Lines = Vec<(String, String)>;

pub fn uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub fn send(agent: &Agent, s: &Signed<'_>, headers: &[(String, String)]) -> HttpResponse {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    agent
        .request(s.method, s.target, &refs, s.body)
        .expect("request")
}

pub fn error(r: &HttpResponse) -> (u16, String) {
    (
        r.status,
        r.json()["error"].as_str().unwrap_or_default().to_string(),
    )
}

/// An agent's files with `plugins` in `[temboard] plugins` and the UI's
/// public key, written (set more keys, then `write` again).
pub fn signed_files(pg: &PgCluster, public_pem: &str, plugins: &str) -> AgentFiles {
    let mut files = AgentFiles::new(Some(pg));
    files.set("temboard", "plugins", plugins);
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), public_pem).unwrap();
    files
}

/// A started agent with `plugins` and the UI's public key.
pub fn agent_with_plugins(pg: &PgCluster, public_pem: &str, plugins: &str) -> Agent {
    Agent::start(signed_files(pg, public_pem, plugins))
}

/// `GET /notifications` (signed) as (user, message) pairs, newest first.
pub fn notification_pairs(agent: &Agent, key: &rsa::RsaPrivateKey) -> Vec<(String, String)> {
    Signed::get("/notifications")
        .send(agent, key)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["username"].as_str().unwrap().to_string(),
                n["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn agent_with_key(pg: Option<&PgCluster>, public_pem: &str) -> Agent {
    let files = AgentFiles::new(pg);
    std::fs::write(files.etc().join("signing-public.pem"), public_pem).unwrap();
    Agent::start(files)
}

impl<'a> Signed<'a> {
    /// A signed POST with a JSON body.
    pub fn post(target: &'a str, body: &'a [u8]) -> Self {
        Signed {
            method: "POST",
            body: Some(body),
            ..Signed::get(target)
        }
    }

    /// Signs with `key` and sends to `agent`.
    pub fn send(&self, agent: &Agent, key: &rsa::RsaPrivateKey) -> HttpResponse {
        send(agent, self, &self.headers(key))
    }
}

/// Sends `spec` (`[{"method", "path", "body"?, "user"?, "tamper"?}]`) to
/// `agent`, signed by the real temBoard 9.0.1 toolkit with the vectors'
/// private key (tests/helpers/toolkit_client.py); one JSON answer a request
/// (`{"status", "body", "etag", "discover_etag"}`).
pub fn toolkit_requests(agent: &Agent, spec: &Value) -> Vec<Value> {
    let v = vectors();
    let keyfile = agent.files.dir.path().join("ui-private.pem");
    std::fs::write(&keyfile, v["private_key_pem_pkcs8"].as_str().unwrap()).unwrap();
    let out = std::process::Command::new(test_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/helpers/toolkit_client.py"
        ))
        .arg(agent.port.to_string())
        .arg(agent.files.etc().join("server.pem"))
        .arg(&keyfile)
        .arg(spec.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the toolkit client failed (scripts/test-python.sh installs temboard-agent==9.0.1):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An object's keys, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Names, sorted (to compare with [`keys`]).
pub fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}
