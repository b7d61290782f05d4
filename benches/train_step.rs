//! One full training step — forward, backward, gradient clipping and AdamW — of GPT-2
//! 124M shapes with random weights (made here, no download) at B=4,T=64 and B=8,T=256,
//! on 1 and 2 threads. Reports ms/step (criterion's time) and tokens/s (its
//! throughput). `scripts/bench_pytorch.py` times the same steps in PyTorch.
//!
//! ```text
//! cargo bench --bench train_step                  # ~8 min on 2 cores
//! cargo bench --bench train_step -- b4_t64        # criterion filter on the id
//! ```
//!
//! Dropout is off (as llm.c and the PyTorch script), the learning rate constant; the
//! data is random token ids. The step includes the data loader's batch copy, which is
//! negligible.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use gpt2::gpt2_core::model::{Config, ParamArena};
use gpt2::gpt2_core::train::data::Order;
use gpt2::gpt2_core::train::optim::AdamWConfig;
use gpt2::gpt2_core::train::schedule::{Schedule, ScheduleKind};
use gpt2::gpt2_core::train::{TrainSettings, Trainer};
use gpt2::gpt2_kernels::rng::Rng;

fn settings(batch: usize, seq: usize) -> TrainSettings {
    TrainSettings {
        batch,
        seq,
        grad_accum: 1,
        schedule: Schedule {
            kind: ScheduleKind::Constant,
            lr: 6e-4,
            warmup: 0,
            total: u64::MAX,
            min_lr_frac: 0.1,
        },
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        seed: 0,
        order: Order::Sequential,
    }
}

fn main() {
    let mut cfg = Config::default();
    (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.0, 0.0, 0.0);
    let params = ParamArena::gpt2_init(&cfg, 1).expect("124M parameters");
    let mut rng = Rng::new(2);
    let tokens: Vec<u32> = (0..200_000)
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    let mut group = c.benchmark_group("train_step_124m");
    group.sampling_mode(SamplingMode::Flat);
    for (b, t) in [(4, 64), (8, 256)] {
        group.throughput(Throughput::Elements((b * t) as u64));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let id = BenchmarkId::new(format!("b{b}_t{t}"), format!("{threads}thr"));
            // Made once, outside the routine (criterion calls it once per sample): a fresh
            // trainer's first step also pays for the first touch of its ~3 GB of arenas.
            let mut trainer =
                Trainer::new(params.clone(), tokens.clone(), settings(b, t)).expect("trainer");
            pool.install(|| trainer.step().expect("step"));
            group.bench_function(id, |bench| {
                bench.iter(|| pool.install(|| trainer.step().expect("step")));
            });
        }
    }
    group.finish();
    c.final_summary();
}
