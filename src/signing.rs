//! temBoard 9.x signed requests (facts 9.x section 2): the canonical text of a
//! request, byte for byte, and its RSASSA-PSS SHA-256 verification, with the
//! 9.x status codes and messages — stricter than 9.0.1 where it was weak
//! (facts 14, rows 1–5): dates parsed strictly, dates in the future refused,
//! strict base64.
//!
//! Why OpenSSL's libcrypto (the `openssl` crate) for the RSA check: the UI
//! signs RSASSA-PSS with the *maximum* salt (222 bytes for RSA-2048, 478
//! for RSA-4096). `ring` and `aws-lc-rs` verify PSS only with a salt as long
//! as the digest, so they would refuse every request the UI sends. RustCrypto's
//! `rsa` can name the salt length but its arithmetic took 574 µs per RSA-4096
//! verification (131 µs at 2048) — most of a request's cost. OpenSSL verifies
//! with `RSA_PSS_SALTLEN_AUTO` (any salt length, the max included) in a
//! fraction of that (`cargo bench --bench signing`). Only public-key
//! verification runs through it: TLS stays rustls.
//!
//! Pure functions: the caller supplies the clock and keeps the request ids
//! (replay refusal needs the agent's database).

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use sha2::{Digest, Sha256};

/// How far in the past a request date may be (9.0.1's window).
pub const MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(2);
/// How far in the future a request date may be (clock skew between hosts).
pub const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The UI's public key, parsed.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: PKey<Public>,
}

impl PublicKey {
    /// Parses a PEM public key: SubjectPublicKeyInfo (`PUBLIC KEY`, what
    /// the UI serves) or PKCS#1 (`RSA PUBLIC KEY`). Only RSA keys.
    pub fn from_pem(pem: &str) -> Result<PublicKey, String> {
        let pem = pem.trim().as_bytes();
        let key = PKey::public_key_from_pem(pem)
            .or_else(|_| Rsa::public_key_from_pem_pkcs1(pem).and_then(PKey::from_rsa))
            .map_err(|_| "not a PEM public key".to_string())?;
        if key.rsa().is_err() {
            return Err("not an RSA public key".into());
        }
        Ok(PublicKey { key })
    }

    /// SHA-256 of the key's DER form (SubjectPublicKeyInfo), lowercase hex:
    /// what `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`
    /// prints on the UI host, whatever the PEM's line breaks.
    pub fn fingerprint(&self) -> String {
        match self.key.public_key_to_der() {
            Ok(der) => crate::users::hex(&Sha256::digest(der)),
            Err(_) => String::from("unknown"),
        }
    }

    /// Key size in bits.
    pub fn bits(&self) -> usize {
        self.key.bits() as usize
    }

    /// Whether `signature` is an RSASSA-PSS SHA-256 (MGF1 SHA-256)
    /// signature of `message`, whatever its salt length (the UI uses the
    /// maximum; other signers the digest length).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let check = || -> Result<bool, openssl::error::ErrorStack> {
            let mut v = Verifier::new(MessageDigest::sha256(), &self.key)?;
            v.set_rsa_padding(Padding::PKCS1_PSS)?;
            v.set_rsa_mgf1_md(MessageDigest::sha256())?;
            // RSA_PSS_SALTLEN_AUTO: recovered from the signature.
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(-2))?;
            v.verify_oneshot(signature, message)
        };
        check().unwrap_or(false)
    }
}

/// One request as received, for canonicalisation.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method as received.
    pub method: &'a str,
    /// Raw request target (path and query, not percent-decoded).
    pub target: &'a str,
    /// Headers in order received: (name, raw value bytes).
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Raw body.
    pub body: &'a [u8],
}

/// Why a signed request is refused; [`Refusal::status`] and its `Display`
/// give the 9.x answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No date.
    #[error("Missing X-TemBoard-Date header.")]
    MissingDate,
    /// A date that is not `YYYYMMDDTHHMMSSZ` (9.0.1 did not parse it).
    #[error("Malformed X-TemBoard-Date header: expected YYYYMMDDTHHMMSSZ (UTC).")]
    MalformedDate,
    /// Outside the 2 h window.
    #[error("Request older than 2 hours.")]
    TooOld,
    /// More than [`MAX_SKEW`] ahead (9.0.1 accepted any future date).
    #[error("Request date is more than 5 minutes in the future.")]
    InTheFuture,
    /// No signature.
    #[error("Missing X-TemBoard-Signature header.")]
    MissingSignature,
    /// Not `v1:`.
    #[error("Unsupported signature format")]
    UnsupportedFormat,
    /// Nothing after `v1:`.
    #[error("Malformed signature")]
    MalformedSignature,
    /// Required headers absent (names sorted, joined with `, `).
    #[error("Missing headers for request signing: {0}")]
    MissingHeaders(String),
    /// Bad base64, wrong key, any tampering.
    #[error("Invalid signature")]
    Invalid,
    /// `X-TemBoard-User` signed but empty.
    #[error("Missing username")]
    MissingUsername,
}

impl Refusal {
    /// The HTTP status of the refusal (facts 2.5).
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Invalid => 403,
            _ => 400,
        }
    }
}

/// What a valid signature establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `X-TemBoard-User`: who to record in notifications and operations.
    pub user: String,
    /// `X-TemBoard-Request-Id`: refused if seen again within the window.
    pub request_id: String,
    /// The request's date.
    pub date: DateTime<Utc>,
}

/// Header names are compared case-insensitively, `_` and `-` alike (WSGI).
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let norm = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            norm(x) == norm(y)
        })
}

/// A header's value: repeated lines joined with `,`, each trimmed, bytes
/// taken as Latin-1 and written as UTF-8 (identical for ASCII).
fn header(req: &Request<'_>, name: &str) -> Option<String> {
    let values: Vec<String> = req
        .headers
        .iter()
        .filter(|(n, _)| same_name(n, name))
        .map(|(_, v)| latin1(v).trim().to_string())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// The request target percent-encoded again (facts 2.3 step 2).
fn encode_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len() * 2);
    let mut push = |b: u8| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    };
    for &b in target.as_bytes() {
        if b < 0x80 {
            push(b);
        } else {
            // A raw byte >= 0x80 is a Latin-1 character: its UTF-8 form.
            let mut buf = [0u8; 2];
            for u in (b as char).encode_utf8(&mut buf).bytes() {
                push(u);
            }
        }
    }
    out
}

/// The canonical text of a request (facts 2.3), or the sorted names of the
/// required headers it lacks.
pub fn canonical(req: &Request<'_>) -> Result<Vec<u8>, Refusal> {
    let method = req.method.to_ascii_uppercase();
    let target = req.target.strip_suffix('?').unwrap_or(req.target);
    let post = method == "POST";
    let mut required = vec![
        "host",
        "x-temboard-date",
        "x-temboard-request-id",
        "x-temboard-user",
    ];
    if post {
        required.extend(["content-length", "content-type"]);
    }
    let mut lines = vec![];
    let mut missing = vec![];
    for name in required {
        match header(req, name) {
            Some(v) => lines.push(format!("{name}: {v}")),
            // A POST without Content-Type is seen as text/plain.
            None if name == "content-type" => lines.push(format!("{name}: text/plain")),
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(Refusal::MissingHeaders(missing.join(", ")));
    }
    lines.sort();
    let mut text = format!("{method} {}\n\n", encode_target(target));
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    if post {
        text.push('\n');
        text.push_str(&crate::users::hex(&Sha256::digest(req.body)));
        text.push('\n');
    }
    Ok(text.into_bytes())
}

/// Parses `YYYYMMDDTHHMMSSZ` strictly.
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|d| d.and_utc())
}

/// What can be checked of a signed request before its body arrives, in
/// the order of facts 2.5: the date and its window, the signature's
/// presence and format, the required headers, and a signature of the key's
/// size. Returns the raw signature and the request's date.
///
/// Why apart from [`verify`]: the signature covers the body, so a body is
/// read before it can be verified; a request that fails here is refused
/// before any byte of its body is read (an unauthenticated peer makes the
/// agent hold nothing).
pub fn precheck(
    key: &PublicKey,
    req: &Request<'_>,
    now: DateTime<Utc>,
) -> Result<(Vec<u8>, DateTime<Utc>), Refusal> {
    let date = header(req, "x-temboard-date").filter(|d| !d.is_empty());
    let date = date.ok_or(Refusal::MissingDate)?;
    let date = parse_date(&date).ok_or(Refusal::MalformedDate)?;
    if date < now - MAX_AGE {
        return Err(Refusal::TooOld);
    }
    if date > now + MAX_SKEW {
        return Err(Refusal::InTheFuture);
    }
    let sig = header(req, "x-temboard-signature").filter(|s| !s.is_empty());
    let sig = sig.ok_or(Refusal::MissingSignature)?;
    let Some(("v1", b64)) = sig.split_once(':') else {
        return Err(Refusal::UnsupportedFormat);
    };
    if b64.is_empty() {
        return Err(Refusal::MalformedSignature);
    }
    canonical(req)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| Refusal::Invalid)?;
    if raw.len() != key.bits().div_ceil(8) {
        return Err(Refusal::Invalid);
    }
    Ok((raw, date))
}

/// Verifies a request at time `now`, in the order of facts 2.5 (with the
/// date checks of facts 14 row 1).
pub fn verify(key: &PublicKey, req: &Request<'_>, now: DateTime<Utc>) -> Result<Signed, Refusal> {
    let (raw, date) = precheck(key, req, now)?;
    let text = canonical(req)?;
    if !key.verify(&text, &raw) {
        return Err(Refusal::Invalid);
    }
    let user = header(req, "x-temboard-user").unwrap_or_default();
    if user.is_empty() {
        return Err(Refusal::MissingUsername);
    }
    Ok(Signed {
        user,
        request_id: header(req, "x-temboard-request-id").unwrap_or_default(),
        date,
    })
}

/// The 9.x `GET /discover` `signature_status`: `enabled` without a
/// signature, else `valid` or `invalid` (never an error: facts 14 row 3).
/// Neither the date nor the user is checked, as in 9.x.
pub fn discover_status(key: Option<&PublicKey>, req: &Request<'_>) -> &'static str {
    let Some(sig) = header(req, "x-temboard-signature") else {
        return "enabled";
    };
    let Some(key) = key else {
        return "invalid";
    };
    let valid = sig
        .strip_prefix("v1:")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .zip(canonical(req).ok())
        .is_some_and(|(raw, text)| key.verify(&text, &raw));
    if valid {
        "valid"
    } else {
        "invalid"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/temboard-9x-signing-vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The vectors' clock: 5 minutes after their date.
    fn pinned() -> DateTime<Utc> {
        parse_date("20250115T103500Z").unwrap()
    }

    /// Headers of a test request: (name, value).
    type Headers = Vec<(String, Vec<u8>)>;

    fn run(
        v: &serde_json::Value,
        key: &PublicKey,
        now: DateTime<Utc>,
        edit: impl Fn(&mut Headers),
    ) -> (Result<Vec<u8>, Refusal>, Result<Signed, Refusal>) {
        let mut headers: Headers = v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
            .collect();
        let body = v["body"].as_str().unwrap_or("").as_bytes().to_vec();
        if v["method"] == "POST" && !headers.iter().any(|(k, _)| k == "Content-Length") {
            headers.push(("Content-Type".into(), b"application/json".to_vec()));
            headers.push(("Content-Length".into(), body.len().to_string().into_bytes()));
        }
        edit(&mut headers);
        let refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let req = Request {
            method: v["method"].as_str().unwrap(),
            target: v["request_target"].as_str().unwrap(),
            headers: &refs,
            body: &body,
        };
        (canonical(&req), verify(key, &req, now))
    }

    #[test]
    fn every_vector_canonicalises_and_verifies_as_expected() {
        let all = vectors();
        let key = PublicKey::from_pem(all["public_key_pem"].as_str().unwrap()).unwrap();
        assert_eq!(key.bits(), 2048);
        let list = all["vectors"].as_array().unwrap();
        assert_eq!(list.len(), 8);
        for v in list {
            let name = v["name"].as_str().unwrap();
            let (text, result) = run(v, &key, pinned(), |_| {});
            if v["expect"] == "valid" {
                assert_eq!(
                    String::from_utf8(text.unwrap()).unwrap(),
                    v["canonical"].as_str().unwrap(),
                    "{name}: canonical text"
                );
                let signed = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    signed.user,
                    v["headers"]["X-TemBoard-User"].as_str().unwrap()
                );
            } else {
                assert_eq!(result, Err(Refusal::Invalid), "{name}");
            }
        }
    }

    #[test]
    fn refusals_in_the_order_of_the_facts() {
        let all = vectors();
        let key = PublicKey::from_pem(all["public_key_pem"].as_str().unwrap()).unwrap();
        let get = &all["vectors"][0];
        let post = &all["vectors"][3];
        let set = |name: &'static str, value: &'static str| {
            move |h: &mut Headers| {
                h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                if !value.is_empty() || name == "X-TemBoard-User" {
                    h.push((name.to_string(), value.as_bytes().to_vec()));
                }
            }
        };
        let check = |v: &serde_json::Value, now, e: &dyn Fn(&mut Headers)| run(v, &key, now, e).1;
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Date", "")),
            Err(Refusal::MissingDate)
        );
        assert_eq!(
            check(
                get,
                pinned(),
                &set("X-TemBoard-Date", "Wed, 15 Jan 2025 10:30:00 GMT")
            ),
            Err(Refusal::MalformedDate)
        );
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Date", "1")),
            Err(Refusal::MalformedDate)
        );
        let late = parse_date("20250115T123001Z").unwrap();
        assert_eq!(check(get, late, &|_| {}), Err(Refusal::TooOld));
        let early = parse_date("20250115T102400Z").unwrap();
        assert_eq!(check(get, early, &|_| {}), Err(Refusal::InTheFuture));
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Signature", "")),
            Err(Refusal::MissingSignature)
        );
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Signature", "v2:abc")),
            Err(Refusal::UnsupportedFormat)
        );
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Signature", "nocolon")),
            Err(Refusal::UnsupportedFormat)
        );
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Signature", "v1:")),
            Err(Refusal::MalformedSignature)
        );
        assert_eq!(
            check(post, pinned(), &|h| h
                .retain(|(k, _)| k != "Content-Length" && k != "Host")),
            Err(Refusal::MissingHeaders("content-length, host".into()))
        );
        // Bad base64 is a 403, not a 500.
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Signature", "v1:abc")),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-Signature", "v1:@@@@")),
            Err(Refusal::Invalid)
        );
        // Another user than the one signed: the canonical text differs.
        assert_eq!(
            check(get, pinned(), &set("X-TemBoard-User", "mallory")),
            Err(Refusal::Invalid)
        );
        assert_eq!(Refusal::Invalid.status(), 403);
        assert_eq!(Refusal::TooOld.status(), 400);
    }

    #[test]
    fn header_rules_of_the_canonical_text() {
        let h: Vec<(&str, &[u8])> = vec![
            ("HOST", b" h:1 "),
            ("x_temboard_date", b"20250115T103000Z"),
            ("X-TemBoard-Request-Id", b"a"),
            ("X-TemBoard-Request-Id", b"b"),
            ("X-TemBoard-User", b"\xe9lise"),
            ("Content-Length", b"0"),
        ];
        let req = Request {
            method: "post",
            target: "/x?",
            headers: &h,
            body: b"",
        };
        assert_eq!(
            String::from_utf8(canonical(&req).unwrap()).unwrap(),
            "POST /x\n\ncontent-length: 0\ncontent-type: text/plain\nhost: h:1\n\
             x-temboard-date: 20250115T103000Z\nx-temboard-request-id: a,b\n\
             x-temboard-user: élise\n\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        );
        assert_eq!(
            encode_target("/a b%?=&:+,~\u{e9}"),
            "/a%20b%25%3F%3D%26%3A%2B%2C~%C3%83%C2%A9"
        );
    }

    #[test]
    fn discover_status_never_fails() {
        let all = vectors();
        let key = PublicKey::from_pem(all["public_key_pem"].as_str().unwrap()).unwrap();
        let v = all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "get-discover")
            .unwrap();
        let headers: Vec<(String, Vec<u8>)> = v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
            .collect();
        let refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let req = |h: &[(&str, &[u8])]| -> &'static str {
            let r = Request {
                method: "GET",
                target: "/discover",
                headers: h,
                body: b"",
            };
            discover_status(Some(&key), &r)
        };
        assert_eq!(req(&refs), "valid");
        assert_eq!(req(&[]), "enabled");
        let no_host: Vec<_> = refs.iter().copied().filter(|(k, _)| *k != "Host").collect();
        assert_eq!(req(&no_host), "invalid");
        let mut bad = refs.clone();
        bad.retain(|(k, _)| *k != "X-TemBoard-Signature");
        bad.push(("X-TemBoard-Signature", b"v1:abc"));
        assert_eq!(req(&bad), "invalid");
    }
}
