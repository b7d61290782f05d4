//! Where the forward pass keeps its activations: one arena of `f32`, carved into named
//! slices (llm.c's `ActivationTensors`).
//!
//! Training keeps every layer's activations ([`Activations`], sized once per (B, T)) for
//! the backward pass, plus the few buffers the backward itself needs. Inference reuses
//! one layer's worth of the same slices for every layer ([`Scratch`]). Both hand the
//! blocks the same [`LayerActs`], so inference and training run the same block code.

use super::config::Config;

/// Hands out consecutive, disjoint slices of an arena; or, made by [`Carver::counter`],
/// only counts what would be handed out, so that an arena's size always comes from the
/// same code that carves it.
struct Carver<'a> {
    rest: &'a mut [f32],
    counting: bool,
    taken: usize,
}

impl<'a> Carver<'a> {
    fn new(arena: &'a mut [f32]) -> Self {
        Carver {
            rest: arena,
            counting: false,
            taken: 0,
        }
    }

    fn counter() -> Carver<'static> {
        Carver {
            rest: &mut [],
            counting: true,
            taken: 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a mut [f32] {
        self.taken += n;
        if self.counting {
            return &mut [];
        }
        let (head, tail) = std::mem::take(&mut self.rest).split_at_mut(n);
        self.rest = tail;
        head
    }
}

/// The activations of one transformer block over N = B·T rows: everything its backward
/// reads. The block's input and output (the residual stream) live outside.
pub(crate) struct LayerActs<'a> {
    pub ln1: &'a mut [f32],       // (N, C) ln_1 output
    pub ln1_mean: &'a mut [f32],  // (N)
    pub ln1_rstd: &'a mut [f32],  // (N)
    pub qkv: &'a mut [f32],       // (N, 3C)
    pub atty: &'a mut [f32],      // (N, C) attention output, heads side by side
    pub lse: &'a mut [f32],       // (B, NH, T) log-sum-exp of each attention row
    pub attproj: &'a mut [f32],   // (N, C) attention c_proj output
    pub residual2: &'a mut [f32], // (N, C) x + attention branch
    pub ln2: &'a mut [f32],       // (N, C)
    pub ln2_mean: &'a mut [f32],  // (N)
    pub ln2_rstd: &'a mut [f32],  // (N)
    pub fch: &'a mut [f32],       // (N, F) c_fc output before GELU
    pub fch_gelu: &'a mut [f32],  // (N, F)
    pub fcproj: &'a mut [f32],    // (N, C) mlp c_proj output
}

impl LayerActs<'_> {
    fn carve<'a>(k: &mut Carver<'a>, cfg: &Config, n: usize) -> LayerActs<'a> {
        let (c, f) = (cfg.n_embd, cfg.n_inner);
        LayerActs {
            ln1: k.take(n * c),
            ln1_mean: k.take(n),
            ln1_rstd: k.take(n),
            qkv: k.take(n * 3 * c),
            atty: k.take(n * c),
            lse: k.take(cfg.n_head * n),
            attproj: k.take(n * c),
            residual2: k.take(n * c),
            ln2: k.take(n * c),
            ln2_mean: k.take(n),
            ln2_rstd: k.take(n),
            fch: k.take(n * f),
            fch_gelu: k.take(n * f),
            fcproj: k.take(n * c),
        }
    }
}

/// The final layer norm's output and statistics.
pub(crate) struct FinalActs<'a> {
    pub lnf: &'a mut [f32],      // (N, C)
    pub lnf_mean: &'a mut [f32], // (N)
    pub lnf_rstd: &'a mut [f32], // (N)
}

impl FinalActs<'_> {
    fn carve<'a>(k: &mut Carver<'a>, cfg: &Config, n: usize) -> FinalActs<'a> {
        FinalActs {
            lnf: k.take(n * cfg.n_embd),
            lnf_mean: k.take(n),
            lnf_rstd: k.take(n),
        }
    }
}

/// Inference scratch for N rows: two residual-stream buffers that the blocks ping-pong
/// between, one layer's activations reused by every layer, and the final layer norm.
pub(crate) struct Scratch {
    arena: Vec<f32>,
    n: usize,
}

/// The slices of a [`Scratch`].
pub(crate) struct ScratchSlices<'a> {
    pub x: [&'a mut [f32]; 2], // (N, C) each: the residual stream before/after a block
    pub layer: LayerActs<'a>,
    pub fin: FinalActs<'a>,
}

impl Scratch {
    pub fn new(cfg: &Config, n: usize) -> Scratch {
        let mut k = Carver::counter();
        ScratchSlices::carve(&mut k, cfg, n);
        Scratch {
            arena: vec![0.0; k.taken],
            n,
        }
    }

    pub fn slices(&mut self, cfg: &Config) -> ScratchSlices<'_> {
        ScratchSlices::carve(&mut Carver::new(&mut self.arena), cfg, self.n)
    }
}

impl ScratchSlices<'_> {
    fn carve<'a>(k: &mut Carver<'a>, cfg: &Config, n: usize) -> ScratchSlices<'a> {
        ScratchSlices {
            x: [k.take(n * cfg.n_embd), k.take(n * cfg.n_embd)],
            layer: LayerActs::carve(k, cfg, n),
            fin: FinalActs::carve(k, cfg, n),
        }
    }
}

/// Everything a training step keeps for a batch of (B, T): the activations of the
/// forward pass (llm.c's `ActivationTensors`: `encoded`, per layer `ln1`, `ln1_mean`,
/// `ln1_rstd`, `qkv`, `atty`, `lse`, `attproj`, `residual2`, `ln2`, ..., `fch`,
/// `fch_gelu`, `fcproj`, `residual3`; then `lnf`, its statistics, `logits`, `losses`)
/// and the backward pass's gradient buffers, all in one arena allocated once.
///
/// Sizes for GPT-2 124M at B = 8, T = 256: about 1.8 GB, most of it the 12 layers'
/// activations (18·N·C floats each) and the (N, V) logits.
#[derive(Debug, Clone)]
pub struct Activations {
    cfg: Config,
    b: usize,
    t: usize,
    arena: Vec<f32>,
    positions: Vec<u32>,
}

/// The gradient buffers of the backward pass, reused by every layer (the backward
/// kernels accumulate, so each is zeroed before use).
pub(crate) struct GradBufs<'a> {
    pub dres: &'a mut [f32],      // (N, C) gradient of the residual stream
    pub dln: &'a mut [f32],       // (N, C) gradient of a layer norm's output
    pub datty: &'a mut [f32],     // (N, C)
    pub dqkv: &'a mut [f32],      // (N, 3C)
    pub dfch: &'a mut [f32],      // (N, F)
    pub dfch_gelu: &'a mut [f32], // (N, F)
}

/// The slices of an [`Activations`] arena.
pub(crate) struct ActSlices<'a> {
    pub encoded: &'a mut [f32], // (N, C) embeddings (after dropout)
    pub layers: Vec<LayerActs<'a>>,
    pub residual3: Vec<&'a mut [f32]>, // L × (N, C): each block's output
    pub fin: FinalActs<'a>,
    pub logits: &'a mut [f32], // (N, V); the backward overwrites it with dlogits
    pub losses: &'a mut [f32], // (N)
    /// (N, C) scratch for a residual branch after dropout (forward) or its gradient
    /// before dropout (backward). Never read across ops.
    pub branch: &'a mut [f32],
    pub grads: GradBufs<'a>,
}

impl ActSlices<'_> {
    /// Logits and losses first, so that [`Activations::logits`] finds them at offset 0.
    fn carve<'a>(k: &mut Carver<'a>, cfg: &Config, n: usize) -> ActSlices<'a> {
        let (c, f) = (cfg.n_embd, cfg.n_inner);
        let logits = k.take(n * cfg.vocab_size);
        let losses = k.take(n);
        let encoded = k.take(n * c);
        let mut layers = Vec::with_capacity(cfg.n_layer);
        let mut residual3 = Vec::with_capacity(cfg.n_layer);
        for _ in 0..cfg.n_layer {
            layers.push(LayerActs::carve(k, cfg, n));
            residual3.push(k.take(n * c));
        }
        ActSlices {
            encoded,
            layers,
            residual3,
            fin: FinalActs::carve(k, cfg, n),
            logits,
            losses,
            branch: k.take(n * c),
            grads: GradBufs {
                dres: k.take(n * c),
                dln: k.take(n * c),
                datty: k.take(n * c),
                dqkv: k.take(n * 3 * c),
                dfch: k.take(n * f),
                dfch_gelu: k.take(n * f),
            },
        }
    }
}

impl Activations {
    /// The arena for batches of `b` sequences of `t` tokens of a model with `cfg`'s sizes.
    pub fn new(cfg: &Config, b: usize, t: usize) -> Activations {
        let mut k = Carver::counter();
        ActSlices::carve(&mut k, cfg, b * t);
        Activations {
            cfg: cfg.clone(),
            b,
            t,
            arena: vec![0.0; k.taken],
            positions: (0..b).flat_map(|_| 0..t as u32).collect(),
        }
    }

    /// The batch size B.
    pub fn batch(&self) -> usize {
        self.b
    }

    /// The sequence length T.
    pub fn seq(&self) -> usize {
        self.t
    }

    /// The config whose sizes this arena was made for.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.arena.len() + self.positions.len()) * 4
    }

    /// The logits `(B, T, V)` of the last forward pass (until a backward pass overwrites
    /// them with their gradient).
    pub fn logits(&self) -> &[f32] {
        &self.arena[..self.b * self.t * self.cfg.vocab_size]
    }

    /// The per-position losses `(B, T)` of the last loss or backward computation.
    pub fn losses(&self) -> &[f32] {
        let (n, v) = (self.b * self.t, self.cfg.vocab_size);
        &self.arena[n * v..n * v + n]
    }

    /// The positions `0..T` of every row, `(B, T)`, and the arena's slices.
    pub(crate) fn split(&mut self) -> (&[u32], ActSlices<'_>) {
        let slices = ActSlices::carve(
            &mut Carver::new(&mut self.arena),
            &self.cfg,
            self.b * self.t,
        );
        (&self.positions, slices)
    }
}
