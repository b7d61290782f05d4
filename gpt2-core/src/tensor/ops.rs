//! Operations on tensors: check shapes, dtypes and devices, then call gpt2-kernels.
//!
//! These are the GPT-2 ops for a library user who holds [`Tensor`]s (the model itself
//! runs on arenas of plain slices and calls the same kernels directly). Each op takes
//! host tensors of f32 (a matmul's right operand may also be bf16), returns a new
//! contiguous f32 tensor, and says in its error what it expected. The instruction set is
//! the best this CPU has ([`Isa::best`]); parallelism is rayon's current pool.
//!
//! What they deliberately do not do: broadcast, autograd, or run on a GPU tensor (that is
//! an [`Error::Device`]: the CUDA ops work on device buffers, see `gpt2_kernels::cuda`).

use gpt2_kernels::cpu::matmul::{self, Epilogue, MatMut, MatRef};
use gpt2_kernels::cpu::simd::Isa;
use gpt2_kernels::cpu::{attention, crossentropy, embedding, gelu, layernorm, residual, softmax};
use half::bf16;

use super::{DType, Device, Tensor};
use crate::error::{Error, Result};

impl Tensor {
    /// The storage from this view's first element and its strides, for a host tensor of
    /// element type `T`; views need not be contiguous.
    fn strided<T: super::TensorElement>(&self, op: &str) -> Result<(&[T], &[usize])> {
        if self.device() != Device::Cpu {
            return Err(Error::Device(format!(
                "{op}: tensor ops run on host tensors; this one is on {}",
                self.device()
            )));
        }
        let all = self.storage.as_slice::<T>()?;
        Ok((&all[self.layout.offset()..], self.strides()))
    }

    /// The data of a contiguous host f32 tensor, or an error naming `op` and `what`.
    fn f32_data(&self, op: &str, what: &str) -> Result<&[f32]> {
        if self.dtype() != DType::F32 {
            return Err(Error::DType {
                context: format!("{op}: {what}"),
                expected: DType::F32,
                found: self.dtype(),
            });
        }
        if self.device() != Device::Cpu {
            return Err(Error::Device(format!(
                "{op}: `{what}` is on {}; tensor ops run on host tensors",
                self.device()
            )));
        }
        self.as_slice::<f32>()
    }

    /// The size of the last dimension (1 for a scalar).
    fn last_dim(&self) -> usize {
        self.shape().last().copied().unwrap_or(1)
    }

    /// Matrix product of two 2-D tensors, `(M, K) · (K, N) → (M, N)`, for any strides:
    /// `a.matmul(&w.transpose(0, 1)?)` reads `w` transposed without copying it. `self` is
    /// f32; `rhs` is f32 or bf16 (f32 accumulation).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let op = "matmul";
        let (&[m, k], &[k2, n]) = (self.shape(), rhs.shape()) else {
            return Err(Error::Shape(format!(
                "{op}: needs 2-D operands, got {:?} and {:?}",
                self.shape(),
                rhs.shape()
            )));
        };
        if k != k2 {
            return Err(Error::Shape(format!(
                "{op}: inner sizes differ: {:?} · {:?}",
                self.shape(),
                rhs.shape()
            )));
        }
        if self.dtype() != DType::F32 {
            return Err(Error::DType {
                context: format!("{op}: left operand"),
                expected: DType::F32,
                found: self.dtype(),
            });
        }
        let (a, sa) = self.strided::<f32>(op)?;
        let a = MatRef::new(a, sa[0], sa[1]);
        let mut out = vec![0.0f32; m * n];
        let c = MatMut::new(&mut out, n);
        let isa = Isa::best();
        match rhs.dtype() {
            DType::F32 => {
                let (b, sb) = rhs.strided::<f32>(op)?;
                matmul::gemm(
                    isa,
                    m,
                    n,
                    k,
                    a,
                    MatRef::new(b, sb[0], sb[1]),
                    c,
                    false,
                    Epilogue::default(),
                )?;
            }
            DType::BF16 => {
                let (b, sb) = rhs.strided::<bf16>(op)?;
                matmul::gemm(
                    isa,
                    m,
                    n,
                    k,
                    a,
                    MatRef::new(b, sb[0], sb[1]),
                    c,
                    false,
                    Epilogue::default(),
                )?;
            }
            DType::F16 => {
                return Err(Error::DType {
                    context: format!("{op}: right operand (f32 or bf16)"),
                    expected: DType::BF16,
                    found: DType::F16,
                });
            }
        }
        Tensor::from_vec(out, &[m, n])
    }

    /// `self (…, K) · weight (K, N) + bias (N)` → `(…, N)`: a GPT-2 Conv1D layer (for a
    /// PyTorch Linear weight `(N, K)`, pass `weight.transpose(0, 1)?`).
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let k = self.last_dim();
        let rows = self.numel() / k.max(1);
        let x = self
            .reshape(&[rows, k])
            .map_err(|e| Error::Shape(format!("linear: input: {e}")))?;
        let mut y = x.matmul(weight)?;
        let n = y.shape()[1];
        if let Some(b) = bias {
            let bias = b.f32_data("linear", "bias")?;
            if bias.len() != n || b.rank() != 1 {
                return Err(Error::Shape(format!(
                    "linear: bias has shape {:?}, expected [{n}]",
                    b.shape()
                )));
            }
            let y = y.as_slice_mut::<f32>()?;
            y.chunks_mut(n)
                .for_each(|row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
        }
        let mut shape = self.shape().to_vec();
        *shape
            .last_mut()
            .ok_or_else(|| Error::Shape("linear: scalar input".into()))? = n;
        y.reshape(&shape)
    }

    /// Elementwise sum of two tensors of the same shape (GPT-2's residual connection).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        if self.shape() != other.shape() {
            return Err(Error::Shape(format!(
                "add: shapes {:?} and {:?} differ",
                self.shape(),
                other.shape()
            )));
        }
        let (a, b) = (self.contiguous()?, other.contiguous()?);
        let mut out = vec![0.0; self.numel()];
        residual::forward(
            Isa::best(),
            &mut out,
            a.f32_data("add", "lhs")?,
            b.f32_data("add", "rhs")?,
        )?;
        Tensor::from_vec(out, self.shape())
    }

    /// GPT-2's GELU (tanh approximation), elementwise.
    pub fn gelu(&self) -> Result<Tensor> {
        let x = self.contiguous()?;
        let mut out = vec![0.0; self.numel()];
        gelu::forward(Isa::best(), &mut out, x.f32_data("gelu", "input")?)?;
        Tensor::from_vec(out, self.shape())
    }

    /// Softmax over the last dimension.
    pub fn softmax(&self) -> Result<Tensor> {
        let x = self.contiguous()?;
        let mut out = vec![0.0; self.numel()];
        softmax::forward(
            Isa::best(),
            &mut out,
            x.f32_data("softmax", "input")?,
            self.last_dim(),
        )?;
        Tensor::from_vec(out, self.shape())
    }

    /// Layer norm over the last dimension `C` (eps 1e-5, biased variance) with gain and
    /// bias of shape `(C)`.
    pub fn layernorm(&self, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let x = self.contiguous()?;
        let rows = self.numel() / self.last_dim().max(1);
        let (mut out, mut mean, mut rstd) =
            (vec![0.0; self.numel()], vec![0.0; rows], vec![0.0; rows]);
        layernorm::forward(
            Isa::best(),
            &mut out,
            &mut mean,
            &mut rstd,
            x.f32_data("layernorm", "input")?,
            weight.f32_data("layernorm", "weight")?,
            bias.f32_data("layernorm", "bias")?,
        )?;
        Tensor::from_vec(out, self.shape())
    }

    /// Causal multi-head self-attention of a packed `qkv (B, T, 3C)` (GPT-2's `c_attn`
    /// output) with `n_head` heads → `(B, T, C)`.
    pub fn attention(&self, n_head: usize) -> Result<Tensor> {
        let &[b, t, c3] = self.shape() else {
            return Err(Error::Shape(format!(
                "attention: qkv must be (B, T, 3C), got {:?}",
                self.shape()
            )));
        };
        let x = self.contiguous()?;
        let c = c3 / 3;
        let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * n_head * t]);
        attention::forward(
            Isa::best(),
            &mut out,
            &mut lse,
            x.f32_data("attention", "qkv")?,
            b,
            t,
            n_head,
        )?;
        Tensor::from_vec(out, &[b, t, c])
    }

    /// Token plus position embedding: rows `wte[tokens[i]] + wpe[positions[i]]` → `(N, C)`.
    /// Token ids and positions are checked against the tables.
    pub fn embedding(
        wte: &Tensor,
        wpe: &Tensor,
        tokens: &[u32],
        positions: &[u32],
    ) -> Result<Tensor> {
        let c = wte.last_dim();
        if wpe.last_dim() != c || wte.rank() != 2 || wpe.rank() != 2 {
            return Err(Error::Shape(format!(
                "embedding: wte {:?} and wpe {:?} must be (rows, C)",
                wte.shape(),
                wpe.shape()
            )));
        }
        let mut out = vec![0.0; tokens.len() * c];
        embedding::forward(
            Isa::best(),
            &mut out,
            tokens,
            positions,
            wte.f32_data("embedding", "wte")?,
            wpe.f32_data("embedding", "wpe")?,
            c,
        )?;
        Tensor::from_vec(out, &[tokens.len(), c])
    }

    /// Cross-entropy of each row of `logits (N, V)` against `targets (N)` → `(N)` losses
    /// (fused with the softmax; no probabilities are materialised).
    pub fn cross_entropy(&self, targets: &[u32]) -> Result<Tensor> {
        let v = self.last_dim();
        let x = self.contiguous()?;
        let mut losses = vec![0.0; targets.len()];
        crossentropy::forward(
            Isa::best(),
            &mut losses,
            x.f32_data("cross_entropy", "logits")?,
            targets,
            v,
        )?;
        Tensor::from_vec(losses, &[targets.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape).unwrap()
    }

    fn close(a: &Tensor, b: &[f32]) {
        let a = a.to_vec_f32().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn matmul_reads_transposed_views_without_copying() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let w = t(&[1., 0., 2., 1., 0., 3.], &[2, 3]); // used as (3, 2) through a transpose
        let wt = w.transpose(0, 1).unwrap();
        assert!(!wt.is_contiguous());
        // wᵀ = [[1, 1], [0, 0], [2, 3]]: a · wᵀ = [[1 + 6, 1 + 9], [4 + 12, 4 + 18]].
        close(&a.matmul(&wt).unwrap(), &[7., 10., 16., 22.]);
        close(
            &a.matmul(&wt.to_dtype(DType::BF16).unwrap()).unwrap(),
            &[7., 10., 16., 22.],
        );
        assert!(a.matmul(&a).is_err());
        assert!(a.matmul(&t(&[1.; 3], &[3])).is_err());
    }

    #[test]
    fn linear_keeps_leading_dims_and_adds_bias() {
        let x = t(&[1., 2., 3., 4.], &[1, 2, 2]);
        let w = t(&[1., 0., 0., 1.], &[2, 2]);
        let y = x.linear(&w, Some(&t(&[10., 20.], &[2]))).unwrap();
        assert_eq!(y.shape(), &[1, 2, 2]);
        close(&y, &[11., 22., 13., 24.]);
        assert!(x.linear(&w, Some(&t(&[1.; 3], &[3]))).is_err());
    }

    #[test]
    fn elementwise_and_row_ops_match_their_definitions() {
        let x = t(&[-1., 0., 1., 2.], &[2, 2]);
        close(&x.add(&x).unwrap(), &[-2., 0., 2., 4.]);
        let g = x.gelu().unwrap().to_vec_f32().unwrap();
        assert!(g[1] == 0.0 && (g[2] - 0.841192).abs() < 1e-5);
        let s = x.softmax().unwrap().to_vec_f32().unwrap();
        assert!((s[0] + s[1] - 1.0).abs() < 1e-6 && s[1] > s[0]);
        let ln = x
            .layernorm(&t(&[1., 1.], &[2]), &t(&[0., 0.], &[2]))
            .unwrap();
        close(&ln, &[-0.99998, 0.99998, -0.99998, 0.99998]);
        let losses = x.cross_entropy(&[1, 0]).unwrap().to_vec_f32().unwrap();
        // Row [-1, 0] with target 1: log(e^-1 + e^0) - 0.
        assert!((losses[0] - (1.0f32 + (-1f32).exp()).ln()).abs() < 1e-5);
        assert!(x.cross_entropy(&[2, 0]).is_err(), "target out of range");
        assert!(x.add(&t(&[1.; 2], &[2])).is_err());
    }

    #[test]
    fn embedding_and_attention_check_their_inputs() {
        let wte = t(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
        let wpe = t(&[100., 200., 300., 400.], &[2, 2]);
        close(
            &Tensor::embedding(&wte, &wpe, &[2, 0], &[0, 1]).unwrap(),
            &[120., 221., 300., 401.],
        );
        assert!(
            Tensor::embedding(&wte, &wpe, &[3], &[0]).is_err(),
            "unknown token"
        );
        let qkv = t(&[0.5; 2 * 3 * 6], &[2, 3, 6]);
        let y = qkv.attention(2).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2]);
        close(&y, &[0.5; 12]); // equal values: any weighting returns them
        assert!(
            qkv.attention(4).is_err(),
            "C = 2 is not divisible by 4 heads"
        );
        assert!(t(&[0.; 4], &[4]).attention(1).is_err());
    }
}
