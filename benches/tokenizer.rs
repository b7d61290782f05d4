//! Single-thread encode and decode throughput of gpt2-tokenizer beside tiktoken-rs
//! (`r50k_base`, the same vocabulary) in the same run: tiny Shakespeare, War and Peace,
//! generated multilingual text, and pathological inputs (long runs without spaces).
//! tiktoken-rs runs under `catch_unwind`; where it panics the bench says so and skips it.
//!
//! `cargo bench --bench tokenizer` (filter e.g. `-- encode/shakespeare`).

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use gpt2_tokenizer::Tokenizer;

#[path = "../gpt2-tokenizer/tests/support/corpus.rs"]
#[allow(dead_code)]
mod corpus;

fn inputs() -> Vec<(&'static str, String)> {
    let read = |name: &str| {
        let path = format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    vec![
        ("shakespeare", read("tinyshakespeare.txt")),
        ("war_and_peace", read("war_and_peace.txt")),
        ("multilingual", corpus::documents(0x5EED, 4000).concat()),
        ("1MB_one_letter", "a".repeat(1 << 20)),
        ("1MB_digits", "7".repeat(1 << 20)),
        ("1MB_cjk", "机器学习是人工智能".repeat((1 << 20) / 27)),
        ("1.1M_spaces_x", format!("{}x", " ".repeat(1_100_000))),
    ]
}

fn configure(group: &mut BenchGroup<'_>, bytes: usize, tokens: usize) {
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(2));
    group.throughput(Throughput::ElementsAndBytes {
        elements: tokens as u64,
        bytes: bytes as u64,
    });
}

type BenchGroup<'a> = BenchmarkGroup<'a, WallTime>;

fn bench(c: &mut Criterion) {
    let ours = Tokenizer::gpt2();
    let tiktoken = tiktoken_rs::r50k_base().expect("tiktoken-rs r50k_base");
    for (name, text) in inputs() {
        let ids = ours.encode(&text);
        // Run tiktoken once first, quietly: it may panic on pathological input.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let tiktoken_ok =
            catch_unwind(AssertUnwindSafe(|| tiktoken.encode_ordinary(&text))).is_ok();
        std::panic::set_hook(hook);
        if tiktoken_ok {
            assert_eq!(
                tiktoken.encode_ordinary(&text),
                ids,
                "{name}: encodings differ"
            );
        } else {
            eprintln!("encode/{name}/tiktoken-rs: panics");
        }
        eprintln!("{name}: {} bytes, {} tokens", text.len(), ids.len());

        let mut group = c.benchmark_group(format!("encode/{name}"));
        configure(&mut group, text.len(), ids.len());
        group.bench_function("ours", |b| b.iter(|| ours.encode(black_box(&text))));
        if tiktoken_ok {
            group.bench_function("tiktoken-rs", |b| {
                b.iter(|| tiktoken.encode_ordinary(black_box(&text)))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("decode/{name}"));
        configure(&mut group, text.len(), ids.len());
        group.bench_function("ours", |b| b.iter(|| ours.decode(black_box(&ids)).unwrap()));
        group.bench_function("tiktoken-rs", |b| {
            b.iter(|| tiktoken.decode_bytes(black_box(&ids)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
