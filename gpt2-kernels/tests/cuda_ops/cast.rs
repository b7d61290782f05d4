//! Casts: GPU vs `cpu::cast`, bit-identical (round to nearest even, including ties,
//! subnormals, infinities and values that overflow to infinity; NaN stays NaN).

use gpt2_kernels::cpu::cast as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;
use crate::gelu::ELEMENTWISE_SIZES;

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "cast::f32_to_bf16",
            run: f32_to_bf16,
        },
        Check {
            name: "cast::bf16_to_f32",
            run: bf16_to_f32,
        },
    ]
}

/// Random values over many binades, with the special cases in front.
fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    let special = [
        0.0,
        -0.0,
        1.0,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-45,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x3F80_8000), // a tie: rounds to even (down)
        f32::from_bits(0x3F81_8000), // a tie: rounds to even (up)
        f32::from_bits(0x7F7F_FFFF), // rounds up to infinity
    ];
    (0..n)
        .map(|i| match special.get(i) {
            Some(&s) => s,
            None => f32::from_bits(rng.next_u64() as u32),
        })
        .collect()
}

fn f32_to_bf16(gpu: &Gpu) -> Res<String> {
    let mut rng = Rng::new(100);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let x = values(&mut rng, n);
        let mut want = vec![bf16::ZERO; n];
        cpu::f32_to_bf16(isa(), &mut want, &x)?;
        let mut out = gpu.alloc::<bf16>(n)?;
        cuda::cast::f32_to_bf16(gpu, &mut out, &gpu.upload(&x)?)?;
        let got = out.to_vec()?;
        // NaN payloads may differ (CUDA returns the canonical NaN); NaN-ness may not.
        let key = |v: &bf16| if v.is_nan() { 0x7FC0 } else { v.to_bits() };
        if let Some(i) = (0..n).find(|&i| key(&got[i]) != key(&want[i])) {
            return Err(format!(
                "n={n}: element {i} ({:e}) -> {:?}, CPU {:?}",
                x[i], got[i], want[i]
            )
            .into());
        }
    }
    Ok("bit-identical (NaN payloads aside)".into())
}

fn bf16_to_f32(gpu: &Gpu) -> Res<String> {
    let mut rng = Rng::new(101);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let x: Vec<bf16> = values(&mut rng, n)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        let mut want = vec![0.0; n];
        cpu::bf16_to_f32(isa(), &mut want, &x)?;
        let mut out = gpu.alloc::<f32>(n)?;
        cuda::cast::bf16_to_f32(gpu, &mut out, &gpu.upload(&x)?)?;
        let key = |v: f32| if v.is_nan() { 0x7FC0_0000 } else { v.to_bits() };
        let got = out.to_vec()?;
        if let Some(i) = (0..n).find(|&i| key(got[i]) != key(want[i])) {
            return Err(format!("n={n}: element {i}: {} vs CPU {}", got[i], want[i]).into());
        }
    }
    Ok("bit-identical (NaN payloads aside)".into())
}
