//! Micro-benchmarks of the IPC frame codec: every API request that needs
//! PostgreSQL pays one encode and one decode each way.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use temboard_agent::ipc::frame::{encode, read_frame, Decoder};
use temboard_agent::ipc::messages::{ProbeCall, ProbeReply, Request, Response};

fn bench(c: &mut Criterion) {
    let req = Request {
        id: 42,
        call: ProbeCall::PgInfo,
    };
    let resp = Response::<ProbeReply> {
        id: 42,
        result: Ok(ProbeReply::PgInfo {
            version: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc, 64-bit".into(),
            port: "5432".into(),
            data_directory: "/var/lib/postgresql/15/main".into(),
            version_num: 150018,
        }),
    };
    c.bench_function("encode request", |b| {
        b.iter(|| encode(black_box(&req)).unwrap())
    });
    let bytes = encode(&resp).unwrap();
    c.bench_function("decode response (blocking reader)", |b| {
        b.iter(|| read_frame::<Response<ProbeReply>, _>(&mut black_box(&bytes[..])).unwrap())
    });
    c.bench_function("decode response (incremental decoder)", |b| {
        b.iter(|| {
            let mut d = Decoder::default();
            d.push(black_box(&bytes));
            d.next_message::<Response<ProbeReply>>().unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
