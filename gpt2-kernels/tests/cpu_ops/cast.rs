use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::cast::{self, reference};
use half::{bf16, f16};

use crate::common::*;

/// Special values, round-to-even ties, and random bit patterns (all classes of floats).
fn inputs(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        65504.0,
        65520.0,
        1e-8,
        6e-5,
        f32::MAX,
        f32::MIN_POSITIVE,
    ];
    x.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x3F80_8000),
        f32::from_bits(0x3F81_8000),
    ]);
    x.extend((0..n).map(|_| f32::from_bits(rng.next_u64() as u32)));
    x
}

#[test]
fn conversions_are_bit_exact_with_half() {
    let mut rng = Rng::new(90);
    for isa in isas() {
        for n in SIZES.into_iter().chain([0, 50_000]) {
            let x = inputs(&mut rng, n);
            let (mut b, mut rb) = (vec![bf16::ZERO; x.len()], vec![bf16::ZERO; x.len()]);
            cast::f32_to_bf16(isa, &mut b, &x).unwrap();
            reference::f32_to_bf16(&mut rb, &x).unwrap();
            let bits = |v: &[bf16]| v.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&b), bits(&rb), "{isa} f32→bf16 n={n}");
            let (mut y, mut ry) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
            cast::bf16_to_f32(isa, &mut y, &b).unwrap();
            reference::bf16_to_f32(&mut ry, &b).unwrap();
            let fbits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(fbits(&y), fbits(&ry), "{isa} bf16→f32 n={n}");

            let (mut h, mut rh) = (vec![f16::ZERO; x.len()], vec![f16::ZERO; x.len()]);
            cast::f32_to_f16(isa, &mut h, &x).unwrap();
            reference::f32_to_f16(&mut rh, &x).unwrap();
            let hbits = |v: &[f16]| v.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
            assert_eq!(hbits(&h), hbits(&rh), "{isa} f32→f16 n={n}");
            cast::f16_to_f32(isa, &mut y, &h).unwrap();
            reference::f16_to_f32(&mut ry, &h).unwrap();
            assert_eq!(fbits(&y), fbits(&ry), "{isa} f16→f32 n={n}");
        }
    }
}

#[test]
fn known_values_round_to_nearest_even() {
    let isa = Isa::best();
    let x = [
        1.0f32,
        f32::from_bits(0x3F80_8000),
        f32::from_bits(0x3F81_8000),
        f32::from_bits(0x3F80_8001),
        65520.0,
        1e-8,
    ];
    let mut b = [bf16::ZERO; 6];
    cast::f32_to_bf16(isa, &mut b, &x).unwrap();
    // Ties go to the even neighbour; just above a tie rounds up.
    assert_eq!(
        b.map(|h| h.to_bits())[..4],
        [0x3F80, 0x3F80, 0x3F82, 0x3F81]
    );
    let mut h = [f16::ZERO; 6];
    cast::f32_to_f16(isa, &mut h, &x).unwrap();
    assert_eq!(h[0].to_bits(), 0x3C00);
    assert_eq!(h[4], f16::INFINITY, "65520 rounds past f16::MAX");
    assert_eq!(h[5].to_bits(), 0, "1e-8 underflows");
}

#[test]
fn deterministic_across_thread_counts_and_errors() {
    let mut rng = Rng::new(91);
    let x = uniform(&mut rng, 70_000, -10.0, 10.0);
    for isa in isas() {
        assert_thread_invariant("cast", || {
            let mut b = vec![bf16::ZERO; x.len()];
            cast::f32_to_bf16(isa, &mut b, &x).unwrap();
            let mut y = vec![0.0; x.len()];
            cast::bf16_to_f32(isa, &mut y, &b).unwrap();
            vec![y]
        });
    }
    let isa = Isa::best();
    let mut b = vec![bf16::ZERO; 3];
    assert!(matches!(
        cast::f32_to_bf16(isa, &mut b, &[0.0; 4]),
        Err(KernelError::Length { .. })
    ));
    let mut y = vec![0.0; 2];
    assert!(matches!(
        cast::bf16_to_f32(isa, &mut y, &b),
        Err(KernelError::Length { .. })
    ));
    let mut h = vec![f16::ZERO; 2];
    assert!(matches!(
        cast::f32_to_f16(isa, &mut h, &[0.0; 3]),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        cast::f16_to_f32(isa, &mut [0.0; 3], &h),
        Err(KernelError::Length { .. })
    ));
}
