//! Helpers shared by the integration tests: fixtures (found relative to the working
//! directory, which cargo sets to the package root, so test binaries also run from a copy
//! of the repository on another machine) and comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// `tests/fixtures/<name>`, relative to the working directory.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from("tests/fixtures").join(name)
}

/// A reference file written by scripts/make_reference.py: tensors as f32 (or i64) vectors.
pub struct Reference {
    pub f32s: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub ints: HashMap<String, (Vec<usize>, Vec<i64>)>,
}

impl Reference {
    pub fn load(path: &std::path::Path) -> Reference {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut r = Reference {
            f32s: HashMap::new(),
            ints: HashMap::new(),
        };
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            match view.dtype() {
                Dtype::F32 => {
                    let v = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    r.f32s.insert(name, (shape, v));
                }
                Dtype::I64 => {
                    let v = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    r.ints.insert(name, (shape, v));
                }
                d => panic!("unexpected dtype {d:?} for {name}"),
            }
        }
        r
    }

    pub fn f32(&self, name: &str) -> &[f32] {
        &self
            .f32s
            .get(name)
            .unwrap_or_else(|| panic!("reference has no {name}"))
            .1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        self.f32s
            .get(name)
            .map(|x| &x.0)
            .or_else(|| self.ints.get(name).map(|x| &x.0))
            .unwrap()
    }

    pub fn tokens(&self, name: &str) -> Vec<u32> {
        self.ints[name].1.iter().map(|&x| x as u32).collect()
    }
}

/// `max|a − b| / max|b|`, the relative error measure used throughout the tests.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| (*y as f64).abs()).fold(0.0, f64::max);
    assert!(a.iter().all(|x| x.is_finite()), "non-finite values");
    if den == 0.0 { num } else { num / den }
}

/// Asserts `rel_err(a, b) <= tol`, naming the tensor.
pub fn assert_close(name: &str, a: &[f32], b: &[f32], tol: f64) {
    let e = rel_err(a, b);
    assert!(e <= tol, "{name}: max|a-b|/max|b| = {e:.3e} > {tol:.0e}");
}

/// The greedy continuation recorded in reference.json.
pub struct Greedy {
    pub prompt: Vec<u32>,
    pub generated: Vec<u32>,
    pub eos: u32,
}

pub fn greedy(dir: &std::path::Path) -> Greedy {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |k: &str| {
        v["greedy"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    Greedy {
        prompt: ids("prompt"),
        generated: ids("generated"),
        eos: v["greedy"]["eos"].as_u64().unwrap() as u32,
    }
}
