//! The model's backward pass checked without PyTorch: every tensor's gradient against
//! central finite differences of an independent float64 forward (written here from the
//! kernels' naive `reference` ops), with and without dropout; the training forward equals
//! the inference forward bit for bit; gradient accumulation equals one big batch.

use gpt2::gpt2_core::model::{Activations, Config, Dropout, ParamArena, ParamKind};
use gpt2::gpt2_kernels::cpu::attention::{self, Dropout as AttnDropout};
use gpt2::gpt2_kernels::cpu::{crossentropy, dropout, embedding, gelu, layernorm, residual};
use gpt2::gpt2_kernels::rng::Rng;

/// A tiny GPT-2 with awkward sizes: V 23, C 12, 3 heads of 4, 2 layers, context 16.
fn tiny_config() -> Config {
    let mut cfg = Config::gpt2_sized(2, 3, 12);
    (cfg.vocab_size, cfg.n_ctx) = (23, 16);
    cfg
}

/// Parameters larger than GPT-2's init, so that every path carries signal.
fn random_params(cfg: &Config, seed: u64) -> ParamArena {
    let mut p = ParamArena::zeros(cfg).unwrap();
    let mut rng = Rng::new(seed);
    for i in 0..p.specs().len() {
        let (kind, gain) = (
            p.specs()[i].kind,
            p.specs()[i].name.ends_with("ln_1.weight")
                || p.specs()[i].name.ends_with("ln_2.weight")
                || p.specs()[i].name.ends_with("ln_f.weight"),
        );
        for x in p.tensor_mut(i) {
            let n = rng.next_normal() as f32;
            *x = match kind {
                _ if gain => 1.0 + 0.2 * n,
                ParamKind::Vector => 0.1 * n,
                _ => 0.3 * n,
            };
        }
    }
    p
}

fn tokens(rng: &mut Rng, n: usize, v: usize) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect()
}

/// `(N, K) · (K, N') + b` in f64, the weight in Conv1D `(in, out)` layout.
fn linear(x: &[f64], w: &[f64], b: &[f64], k: usize) -> Vec<f64> {
    let n = b.len();
    let mut out = Vec::with_capacity(x.len() / k * n);
    for row in x.chunks(k) {
        for j in 0..n {
            out.push(b[j] + (0..k).map(|i| row[i] * w[i * n + j]).sum::<f64>());
        }
    }
    out
}

/// The dropout counters of one forward pass, as documented in `model/dropout.rs`:
/// `pass·span`, then embd (N·C), then per layer attention (B·NH·T·T), attention branch
/// (N·C), MLP branch (N·C).
struct Counters {
    next: u64,
}

impl Counters {
    fn take(&mut self, len: usize) -> u64 {
        let at = self.next;
        self.next += len as u64;
        at
    }
}

/// Applies dropout `p` at counter `offset` (nothing for p = 0).
fn drop64(x: Vec<f64>, p: f32, seed: u64, offset: u64) -> Vec<f64> {
    if p == 0.0 {
        return x;
    }
    let mut out = vec![0.0; x.len()];
    dropout::reference::forward(&mut out, &x, p, seed, offset).unwrap();
    out
}

/// The mean loss of a batch, entirely in f64 through the reference kernels.
fn loss64(
    cfg: &Config,
    params: &[Vec<f64>],
    x: &[u32],
    y: &[u32],
    (b, t): (usize, usize),
    d: &Dropout,
) -> f64 {
    let (c, f, nh, v, n) = (cfg.n_embd, cfg.n_inner, cfg.n_head, cfg.vocab_size, b * t);
    let span = (n * c + cfg.n_layer * (b * nh * t * t + 2 * n * c)) as u64;
    let mut ctr = Counters {
        next: d.pass * span,
    };
    let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let mut h = vec![0.0; n * c];
    embedding::reference::forward(&mut h, x, &positions, &params[0], &params[1], c).unwrap();
    let mut h = drop64(h, d.embd, d.seed, ctr.take(n * c));
    let ln = |inp: &[f64], w: &[f64], bias: &[f64]| {
        let (mut out, mut m, mut r) = (vec![0.0; inp.len()], vec![0.0; n], vec![0.0; n]);
        layernorm::reference::forward(&mut out, &mut m, &mut r, inp, w, bias).unwrap();
        out
    };
    for l in 0..cfg.n_layer {
        let p = &params[2 + 12 * l..2 + 12 * (l + 1)];
        let qkv = linear(&ln(&h, &p[0], &p[1]), &p[2], &p[3], c);
        let (mut att, mut lse) = (vec![0.0; n * c], vec![0.0; b * nh * t]);
        let ad = AttnDropout {
            p: d.attn,
            seed: d.seed,
            offset: ctr.take(b * nh * t * t),
        };
        attention::reference::forward_train(&mut att, &mut lse, &qkv, b, t, nh, Some(ad)).unwrap();
        let branch = drop64(
            linear(&att, &p[4], &p[5], c),
            d.resid,
            d.seed,
            ctr.take(n * c),
        );
        let mut h2 = vec![0.0; n * c];
        residual::reference::forward(&mut h2, &h, &branch).unwrap();
        let fc = linear(&ln(&h2, &p[6], &p[7]), &p[8], &p[9], c);
        let mut fc_gelu = vec![0.0; n * f];
        gelu::reference::forward(&mut fc_gelu, &fc).unwrap();
        let branch = drop64(
            linear(&fc_gelu, &p[10], &p[11], f),
            d.resid,
            d.seed,
            ctr.take(n * c),
        );
        residual::reference::forward(&mut h, &h2, &branch).unwrap();
    }
    let k = params.len();
    let hf = ln(&h, &params[k - 2], &params[k - 1]);
    // Tied LM head: logits = hf · wteᵀ.
    let wte = &params[0];
    let logits: Vec<f64> = hf
        .chunks(c)
        .flat_map(|row| (0..v).map(move |j| (0..c).map(|i| row[i] * wte[j * c + i]).sum::<f64>()))
        .collect();
    let mut losses = vec![0.0; n];
    crossentropy::reference::forward(&mut losses, &logits, y, v).unwrap();
    losses.iter().sum::<f64>() / n as f64
}

/// Every tensor's gradient (f32, our backward) against central differences of the f64
/// forward at 6 coordinates per tensor: `max|a − fd| ≤ 2e-4 · max|a|` over the tensor.
fn check_fd(d: Dropout) {
    let cfg = tiny_config();
    let params = random_params(&cfg, 11);
    let (b, t) = (2, 7);
    let mut rng = Rng::new(12);
    let (x, y) = (
        tokens(&mut rng, b * t, cfg.vocab_size),
        tokens(&mut rng, b * t, cfg.vocab_size),
    );
    let mut acts = Activations::new(&cfg, b, t);
    let mut grads = vec![0.0; params.len()];
    let view = params.view().unwrap();
    view.forward_train(&mut acts, &x, &d).unwrap();
    view.backward(&mut acts, &x, &y, &d, 1.0 / (b * t) as f32, &mut grads)
        .unwrap();

    let mut p64: Vec<Vec<f64>> = (0..params.specs().len())
        .map(|i| params.tensor(i).iter().map(|&v| f64::from(v)).collect())
        .collect();
    let h = 1e-6;
    for (i, spec) in params.specs().iter().enumerate() {
        let g = &grads[params.range(i)];
        let scale = g.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
        assert!(scale > 1e-4, "{}: gradient is all (near) zero", spec.name);
        for _ in 0..6 {
            let j = (rng.next_u64() % g.len() as u64) as usize;
            let x0 = p64[i][j];
            p64[i][j] = x0 + h;
            let up = loss64(&cfg, &p64, &x, &y, (b, t), &d);
            p64[i][j] = x0 - h;
            let down = loss64(&cfg, &p64, &x, &y, (b, t), &d);
            p64[i][j] = x0;
            let fd = (up - down) / (2.0 * h);
            let err = (f64::from(g[j]) - fd).abs();
            assert!(
                err <= 2e-4 * scale,
                "{} [{j}] ({d:?}): backward {} vs finite differences {fd} (tensor max {scale:.3e})",
                spec.name,
                g[j]
            );
        }
    }
    // The f64 forward is the same function as ours: the f32 losses agree.
    let want = loss64(&cfg, &p64, &x, &y, (b, t), &d);
    view.forward_train(&mut acts, &x, &d).unwrap();
    let got = f64::from(view.loss(&mut acts, &y).unwrap());
    assert!(((got - want) / want).abs() < 1e-5, "loss {got} vs {want}");
}

#[test]
fn backward_matches_finite_differences_without_dropout() {
    check_fd(Dropout::OFF);
}

#[test]
fn backward_matches_finite_differences_with_dropout() {
    check_fd(Dropout {
        embd: 0.2,
        attn: 0.3,
        resid: 0.25,
        seed: 5,
        pass: 3,
    });
}

/// With dropout off, the training forward runs the inference blocks on the same kernels:
/// its logits are bitwise those of `forward_full` (T = 70 crosses an attention block).
#[test]
fn training_forward_equals_inference_forward_bitwise() {
    let mut cfg = tiny_config();
    cfg.n_ctx = 80;
    let params = random_params(&cfg, 21);
    let view = params.view().unwrap();
    let mut rng = Rng::new(22);
    for (b, t) in [(1, 1), (3, 70), (2, 5)] {
        let x = tokens(&mut rng, b * t, cfg.vocab_size);
        let full = view.forward_full(&x, b, t, None).unwrap();
        let mut acts = Activations::new(&cfg, b, t);
        view.forward_train(&mut acts, &x, &Dropout::OFF).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(acts.logits()), bits(&full), "B={b} T={t}");
        // Dropout changes them.
        view.forward_train(&mut acts, &x, &Dropout::uniform(0.5, 1, 0))
            .unwrap();
        assert_ne!(bits(acts.logits()), bits(&full), "B={b} T={t} with dropout");
    }
}

/// k micro-batches of B rows, each weighted 1/(k·B·T), give the gradient of one batch
/// of k·B rows within 1e-6 (`max|a − b| / max|b|` per tensor).
#[test]
fn gradient_accumulation_equals_one_large_batch() {
    let cfg = tiny_config();
    let params = random_params(&cfg, 31);
    let view = params.view().unwrap();
    let (k, b, t) = (4, 2, 9);
    let mut rng = Rng::new(32);
    let (x, y) = (
        tokens(&mut rng, k * b * t, cfg.vocab_size),
        tokens(&mut rng, k * b * t, cfg.vocab_size),
    );
    let mut big = vec![0.0; params.len()];
    let mut acts = Activations::new(&cfg, k * b, t);
    view.forward_train(&mut acts, &x, &Dropout::OFF).unwrap();
    let loss_big = view
        .backward(
            &mut acts,
            &x,
            &y,
            &Dropout::OFF,
            1.0 / (k * b * t) as f32,
            &mut big,
        )
        .unwrap();
    let mut acc = vec![0.0; params.len()];
    let mut acts = Activations::new(&cfg, b, t);
    let mut loss_sum = 0.0;
    for (xs, ys) in x.chunks(b * t).zip(y.chunks(b * t)) {
        view.forward_train(&mut acts, xs, &Dropout::OFF).unwrap();
        loss_sum += view
            .backward(
                &mut acts,
                xs,
                ys,
                &Dropout::OFF,
                1.0 / (k * b * t) as f32,
                &mut acc,
            )
            .unwrap();
    }
    assert!(((loss_sum / k as f32 - loss_big) / loss_big).abs() < 1e-6);
    for (i, spec) in params.specs().iter().enumerate() {
        let (a, g) = (&acc[params.range(i)], &big[params.range(i)]);
        let num = a
            .iter()
            .zip(g)
            .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
        let den = g.iter().fold(0.0f32, |m, q| m.max(q.abs()));
        assert!(num <= 1e-6 * den, "{}: {:.3e}", spec.name, num / den);
    }
}

/// Gradients are bitwise identical on pools of 1, 2 and 3 threads (with dropout).
#[test]
fn backward_is_deterministic_across_thread_counts() {
    let cfg = tiny_config();
    let params = random_params(&cfg, 41);
    let (b, t) = (2, 16);
    let mut rng = Rng::new(42);
    let (x, y) = (
        tokens(&mut rng, b * t, cfg.vocab_size),
        tokens(&mut rng, b * t, cfg.vocab_size),
    );
    let d = Dropout::uniform(0.1, 3, 0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let view = params.view().unwrap();
            let mut acts = Activations::new(&cfg, b, t);
            let mut g = vec![0.0f32; params.len()];
            view.forward_train(&mut acts, &x, &d).unwrap();
            view.backward(&mut acts, &x, &y, &d, 0.01, &mut g).unwrap();
            g.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}
