//! Sampling filters against Hugging Face's own logits processors (candidate sets and
//! processed logits recorded by scripts/make_sampling_reference.py).

mod common;

use gpt2::gpt2_core::sample::{
    apply_repetition_penalty, apply_temperature, top_k_filter, top_p_filter,
};

#[test]
fn filters_keep_exactly_hugging_faces_candidate_sets() {
    let text = std::fs::read_to_string(common::fixture("sampling.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let row = case["row"].as_str().unwrap();
        let mut logits: Vec<f32> = v["rows"][row]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let p = &case["params"];
        let history: Vec<u32> = case["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        apply_repetition_penalty(
            &mut logits,
            &history,
            p["repetition_penalty"].as_f64().unwrap() as f32,
        );
        apply_temperature(&mut logits, p["temperature"].as_f64().unwrap() as f32);
        top_k_filter(&mut logits, p["top_k"].as_u64().unwrap() as usize);
        top_p_filter(&mut logits, p["top_p"].as_f64().unwrap() as f32);
        let kept: Vec<u64> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, _)| i as u64)
            .collect();
        let want: Vec<u64> = case["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(kept, want, "row {row}, params {p}");
        for (i, w) in want.iter().zip(case["kept_logits"].as_array().unwrap()) {
            let (a, b) = (logits[*i as usize] as f64, w.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "row {row} token {i}: {a} vs {b}"
            );
        }
    }
}
