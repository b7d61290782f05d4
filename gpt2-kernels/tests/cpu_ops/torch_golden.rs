//! Values computed by PyTorch (2.15, CPU, float32), the framework the model is later
//! compared against: they pin the GELU convention and AdamW's formula, which a
//! self-written reference could get wrong in the same way as the kernel. Produced by:
//!
//! ```python
//! x = (torch.arange(21, dtype=torch.float32) - 10) * 0.37
//! xr = x.clone().requires_grad_(True)
//! y = torch.nn.functional.gelu(xr, approximate="tanh"); y.backward(torch.ones_like(y))
//! p = ((torch.arange(8, dtype=torch.float32) - 3.5) / 4).requires_grad_(True)
//! opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
//! for t in range(1, 4):
//!     p.grad = torch.tensor([((i * 7 + t * 3) % 11 - 5) / 8 for i in range(8)])
//!     opt.step()
//! ```

use gpt2_kernels::cpu::adamw::{self, AdamWParams};
use gpt2_kernels::cpu::gelu;

use crate::common::*;

const GELU: [f64; 21] = [
    -0.0002718120813369751,
    -0.001175419078208506,
    -0.004126956686377525,
    -0.011965455487370491,
    -0.02904335781931877,
    -0.05951780453324318,
    -0.10298831015825272,
    -0.14837384223937988,
    -0.17000706493854523,
    -0.13161136209964752,
    0.0,
    0.23838864266872406,
    0.5699928998947144,
    0.9616262316703796,
    1.3770116567611694,
    1.7904821634292603,
    2.1909565925598145,
    2.5780348777770996,
    2.9558730125427246,
    3.328824520111084,
    3.69972825050354,
];
const DGELU: [f64; 21] = [
    -0.0011567530455067754,
    -0.004311210475862026,
    -0.012911755591630936,
    -0.031488630920648575,
    -0.06289731711149216,
    -0.10195133090019226,
    -0.12825213372707367,
    -0.10535362362861633,
    0.00542353093624115,
    0.21790598332881927,
    0.5,
    0.7820940017700195,
    0.9945764541625977,
    1.105353593826294,
    1.1282521486282349,
    1.1019513607025146,
    1.0628973245620728,
    1.0314886569976807,
    1.0129116773605347,
    1.004311203956604,
    1.0011568069458008,
];
const ADAMW_P: [f64; 8] = [
    -0.864224910736084,
    -0.6365396976470947,
    -0.39304566383361816,
    -0.10872416198253632,
    0.11670238524675369,
    0.3690086007118225,
    0.644527018070221,
    0.8695482015609741,
];
const ADAMW_M: [f64; 8] = [
    0.04100000113248825,
    0.016874998807907104,
    0.0051250034011900425,
    0.007124999072402716,
    -0.017000000923871994,
    -0.02875000238418579,
    -0.026750000193715096,
    -0.05087500065565109,
];
const ADAMW_V: [f64; 8] = [
    0.016062499955296516,
    0.0243066418915987,
    0.025080077350139618,
    0.013376953080296516,
    0.023937497287988663,
    0.026210937649011612,
    0.015148437581956387,
    0.028025390580296516,
];

#[test]
fn gelu_matches_pytorch() {
    let x: Vec<f32> = (0..21).map(|i| (i as f32 - 10.0) * 0.37).collect();
    for isa in isas() {
        let mut y = vec![0.0; 21];
        gelu::forward(isa, &mut y, &x).unwrap();
        assert_close(&format!("{isa} gelu vs torch"), &y, &GELU, 1e-6);
        let mut d = vec![0.0; 21];
        gelu::backward(isa, &mut d, &x, &[1.0; 21]).unwrap();
        assert_close(&format!("{isa} gelu backward vs torch"), &d, &DGELU, 1e-6);
    }
}

#[test]
fn adamw_matches_pytorch() {
    let hp = AdamWParams {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
    };
    for isa in isas() {
        let mut p: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) / 4.0).collect();
        let (mut m, mut v) = (vec![0.0; 8], vec![0.0; 8]);
        for t in 1..=3u64 {
            let g: Vec<f32> = (0..8u64)
                .map(|i| ((i * 7 + t * 3) % 11) as f32 / 8.0 - 5.0 / 8.0)
                .collect();
            adamw::step(isa, &mut p, &g, &mut m, &mut v, &hp, t, 0.1).unwrap();
        }
        assert_close(&format!("{isa} params vs torch"), &p, &ADAMW_P, 1e-6);
        assert_close(&format!("{isa} m vs torch"), &m, &ADAMW_M, 1e-6);
        assert_close(&format!("{isa} v vs torch"), &v, &ADAMW_V, 1e-6);
    }
}
