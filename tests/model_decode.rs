//! The fast inference paths against each other and against the naive reference forward:
//! KV-cache decoding vs full recomputation, ragged batches vs one sequence at a time, thread
//! counts, and GPT-2 124M shapes with the cache filled to n_ctx.

mod common;

use common::{assert_close, fixture};
use gpt2::gpt2_core::model::{Config, Gpt2, KvCache, Segment, reference};

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = gpt2::gpt2_kernels::rng::Rng::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

#[test]
fn kv_cache_decode_equals_full_recompute() {
    let model = Gpt2::load(&fixture("tiny-small")).unwrap();
    let view = model.view().unwrap();
    let (v, n) = (model.config().vocab_size, 40);
    let toks = tokens(n, v, 1);
    let full = view.forward_full(&toks, 1, n, None).unwrap();
    // Prefill 13 tokens, then one token at a time; each step's logits are the full pass's row.
    let mut cache = KvCache::new(model.config(), 1);
    let first = view
        .forward_cached(
            &mut cache,
            &[Segment {
                seq: 0,
                tokens: &toks[..13],
            }],
        )
        .unwrap();
    assert_close("prefill", &first, &full[12 * v..13 * v], 1e-5);
    for i in 13..n {
        let step = view
            .forward_cached(
                &mut cache,
                &[Segment {
                    seq: 0,
                    tokens: &toks[i..=i],
                }],
            )
            .unwrap();
        assert_close(
            &format!("decode step {i}"),
            &step,
            &full[i * v..(i + 1) * v],
            1e-5,
        );
    }
    assert_eq!(cache.len(0), n);
}

#[test]
fn ragged_batch_equals_sequences_one_by_one() {
    let model = Gpt2::load(&fixture("tiny-small")).unwrap();
    let view = model.view().unwrap();
    let v = model.config().vocab_size;
    let seqs: Vec<Vec<u32>> = [5usize, 1, 17]
        .iter()
        .enumerate()
        .map(|(i, &n)| tokens(n, v, 10 + i as u64))
        .collect();
    let mut batch_cache = KvCache::new(model.config(), 3);
    let segs: Vec<Segment> = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| Segment { seq: i, tokens: s })
        .collect();
    let batched = view.forward_cached(&mut batch_cache, &segs).unwrap();
    // Next step: one new token for sequences 2 and 0 only, in that order.
    let step = view
        .forward_cached(
            &mut batch_cache,
            &[
                Segment {
                    seq: 2,
                    tokens: &[7],
                },
                Segment {
                    seq: 0,
                    tokens: &[8],
                },
            ],
        )
        .unwrap();
    for (i, s) in seqs.iter().enumerate() {
        let mut c = KvCache::new(model.config(), 1);
        let alone = view
            .forward_cached(&mut c, &[Segment { seq: 0, tokens: s }])
            .unwrap();
        assert_close(
            &format!("sequence {i} in a batch"),
            &batched[i * v..(i + 1) * v],
            &alone,
            1e-5,
        );
        let next = match i {
            2 => Some((0, 7)),
            0 => Some((1, 8)),
            _ => None,
        };
        if let Some((row, tok)) = next {
            let alone_step = view
                .forward_cached(
                    &mut c,
                    &[Segment {
                        seq: 0,
                        tokens: &[tok],
                    }],
                )
                .unwrap();
            assert_close(
                &format!("sequence {i} second step"),
                &step[row * v..(row + 1) * v],
                &alone_step,
                1e-5,
            );
        }
    }
}

#[test]
fn results_are_bitwise_identical_for_1_2_and_3_threads() {
    let model = Gpt2::load(&fixture("tiny-small")).unwrap();
    let toks = tokens(2 * 30, model.config().vocab_size, 3);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            model
                .view()
                .unwrap()
                .forward_full(&toks, 2, 30, None)
                .unwrap()
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
fn bf16_weights_stay_close_to_f32() {
    let model = Gpt2::load(&fixture("tiny-small")).unwrap();
    let toks = tokens(20, 211, 4);
    let a = model
        .view()
        .unwrap()
        .forward_full(&toks, 1, 20, None)
        .unwrap();
    let bf = model.clone().with_bf16_weights().unwrap();
    assert!(bf.weight_bytes_per_token() * 2 <= model.weight_bytes_per_token() + 8);
    let b = bf.view().unwrap().forward_full(&toks, 1, 20, None).unwrap();
    // bf16 keeps 8 bits of mantissa: relative error of a few 1e-3 on logits.
    assert_close("bf16 weights", &b, &a, 2e-2);
}

#[test]
fn gpt2_124m_shapes_fast_path_equals_naive_reference_and_cache_fills_to_n_ctx() {
    let cfg = Config::default();
    let model = Gpt2::random(cfg.clone(), 42).unwrap();
    let view = model.view().unwrap();
    let v = cfg.vocab_size;
    // Naive reference vs fast full forward on a short batch (the naive path is slow).
    let short = tokens(2 * 9, v, 5);
    let naive = reference::forward(&cfg, &view.weights, &short, 2, 9).unwrap();
    let fast = view.forward_full(&short, 2, 9, None).unwrap();
    assert_close("124M fast vs naive", &fast, &naive, 1e-4);
    // Fill the KV cache to n_ctx = 1024: prefill 1023 tokens, decode the 1024th, and compare
    // with the full forward over 1024 positions (last row).
    let long = tokens(cfg.n_ctx, v, 6);
    let full = view.forward_full(&long, 1, cfg.n_ctx, None).unwrap();
    let mut cache = KvCache::new(&cfg, 1);
    let pre = view
        .forward_cached(
            &mut cache,
            &[Segment {
                seq: 0,
                tokens: &long[..cfg.n_ctx - 1],
            }],
        )
        .unwrap();
    assert_close(
        "prefill row 1022",
        &pre,
        &full[(cfg.n_ctx - 2) * v..(cfg.n_ctx - 1) * v],
        1e-4,
    );
    let last = view
        .forward_cached(
            &mut cache,
            &[Segment {
                seq: 0,
                tokens: &long[cfg.n_ctx - 1..],
            }],
        )
        .unwrap();
    assert_close(
        "decode at position 1023",
        &last,
        &full[(cfg.n_ctx - 1) * v..],
        1e-4,
    );
    assert_eq!(cache.len(0), cfg.n_ctx);
    assert!(
        view.forward_cached(
            &mut cache,
            &[Segment {
                seq: 0,
                tokens: &[0]
            }]
        )
        .is_err(),
        "the cache is full"
    );
}
