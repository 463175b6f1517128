//! What a temBoard 9.x signed request costs the http worker before any
//! handler runs: the canonical text and the RSASSA-PSS verification, with
//! the UI's 4096-bit key (what `temboard generate-key` makes) and a 2048-bit
//! one.

use criterion::{criterion_group, criterion_main, Criterion};
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use std::hint::black_box;
use temboard_agent::signing::{canonical, verify, PublicKey, Request};

fn bench(c: &mut Criterion) {
    let headers: Vec<(&str, &[u8])> = vec![
        ("Host", b"pg1.example.com:2345"),
        ("X-TemBoard-Date", b"20250115T103000Z"),
        (
            "X-TemBoard-Request-Id",
            b"5c3e2b9a-6f1d-4c8e-9a47-2d0b8f6e1a33",
        ),
        ("X-TemBoard-User", b"temboard"),
        ("Accept-Encoding", b"identity"),
    ];
    let req = |headers: &[(&'static str, &'static [u8])]| Request {
        method: "GET",
        target: "/monitoring/history?limit=100&start=2025-01-15T10:28:01Z",
        headers: headers.to_vec().leak(),
        body: b"",
    };
    let base = req(&headers);
    c.bench_function("canonical GET with query", |b| {
        b.iter(|| canonical(black_box(&base)))
    });
    let now = chrono::NaiveDateTime::parse_from_str("20250115T103500Z", "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    for bits in [2048usize, 4096] {
        // OpenSSL makes the key: the `rsa` crate's key generation takes
        // minutes in the unoptimised build `cargo test --all-targets` runs.
        let pem = openssl::rsa::Rsa::generate(bits as u32)
            .and_then(openssl::pkey::PKey::from_rsa)
            .and_then(|k| k.private_key_to_pem_pkcs8())
            .unwrap();
        use rsa::pkcs8::DecodePrivateKey;
        let private =
            rsa::RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
        let public_pem = rsa::RsaPublicKey::from(&private)
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let key = PublicKey::from_pem(&public_pem).unwrap();
        let text = canonical(&base).unwrap();
        let salt = (bits - 1).div_ceil(8) - 32 - 2;
        let signer = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new_with_salt_len(private, salt);
        let sig = signer.sign_with_rng(&mut rsa::rand_core::OsRng, &text);
        use base64::Engine;
        let value = format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
        );
        let mut signed = headers.clone();
        signed.push(("X-TemBoard-Signature", value.leak().as_bytes()));
        let request = req(&signed);
        assert!(verify(&key, &request, now).is_ok());
        c.bench_function(&format!("verify RSA-{bits} (canonical + PSS)"), |b| {
            b.iter(|| verify(black_box(&key), black_box(&request), now))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
