//! Micro-benchmarks of the pgconf pure functions on the request path:
//! every `GET /pgconf/hba` parses the file, every settings listing converts
//! hundreds of values to their units.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use temboard_agent::plugins::pgconf::{hba, settings};

/// A realistic pg_hba.conf: comments, every connection type, options.
fn hba_text(lines: usize) -> String {
    let mut t =
        String::from("# TYPE  DATABASE        USER            ADDRESS                 METHOD\n\n");
    let forms = [
        "local   all             postgres                                peer",
        "local   all             all                                     scram-sha-256",
        "host    all             all             127.0.0.1/32            scram-sha-256",
        "host    all             all             ::1/128                 scram-sha-256",
        "hostssl app,reports     +admins         10.0.0.0/8              cert clientcert=verify-full",
        "host    replication     replicator      192.168.1.10 255.255.255.255 md5",
        "# a comment about the next line",
        "hostnossl all           all             0.0.0.0/0               reject",
    ];
    for i in 0..lines {
        t.push_str(forms[i % forms.len()]);
        t.push('\n');
    }
    t
}

fn bench(c: &mut Criterion) {
    let small = hba_text(10);
    let large = hba_text(1_000);
    c.bench_function("hba parse, 10 lines", |b| {
        b.iter(|| hba::parse(black_box(&small)))
    });
    c.bench_function("hba parse, 1,000 lines", |b| {
        b.iter(|| hba::parse(black_box(&large)))
    });
    let entries = hba::parse(&large);
    c.bench_function("hba write, 1,000 entries", |b| {
        b.iter(|| hba::write(black_box(&entries)).unwrap())
    });
    let values = [
        ("128MB", Some("8kB")),
        ("4GB", Some("kB")),
        ("30s", Some("ms")),
        ("5min", Some("s")),
        ("1d", Some("min")),
        ("16384", Some("8kB")),
        ("0.9", None),
        ("not a number", Some("kB")),
    ];
    c.bench_function("unit conversion (8 values)", |b| {
        b.iter(|| {
            for (v, u) in &values {
                black_box(settings::to_unit(black_box(v), *u));
            }
        })
    });
    c.bench_function("typed setting value (8 values)", |b| {
        b.iter(|| {
            for (v, u) in &values {
                black_box(settings::typed(
                    "work_mem",
                    "integer",
                    *u,
                    Some(black_box(v)),
                ));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
