//! `--profile`: where the time goes, per op.
//!
//! When enabled ([`enable`]), every kernel call of the forward pass, the backward pass
//! and the optimizer is timed and booked under its op's name with the work it did
//! (FLOPs, and bytes it must move at least). [`take`] drains the records into a
//! [`Profile`], whose [`Profile::table`] prints calls, total ms, share of the wall time,
//! GFLOP/s, GB/s, and the fraction of what the machine allows for that op: its
//! *roofline*, `min(FMA peak, arithmetic intensity × read bandwidth)`, measured by
//! [`gpt2_kernels::cpu::machine`].
//!
//! Off by default; then each call costs one relaxed atomic load. The records are global
//! (one model runs at a time in the examples that use this); it deliberately does not
//! separate concurrent runs or nest scopes.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gpt2_kernels::cpu::machine;
use gpt2_kernels::cpu::matmul::{Weight, WeightData};

static ENABLED: AtomicBool = AtomicBool::new(false);
static RECORDS: Mutex<Vec<OpStats>> = Mutex::new(Vec::new());

/// Turns recording on or off (for the whole process).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether recording is on.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The work of one call: FLOPs and the bytes it reads and writes at least once.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Work {
    pub flops: f64,
    pub bytes: f64,
}

impl Work {
    /// A memory-bound op moving `bytes` (its few FLOPs per byte are not counted).
    pub fn bytes(bytes: usize) -> Work {
        Work {
            flops: 0.0,
            bytes: bytes as f64,
        }
    }

    /// `(m, k) · W (k, n)` plus bias: reads the input and the weight, writes the output.
    pub fn matmul(m: usize, k: usize, n: usize, w: &Weight<'_>) -> Work {
        Work {
            flops: 2.0 * (m * k * n) as f64,
            bytes: (4 * (m * k + m * n)) as f64 + weight_bytes(w),
        }
    }

    /// The backward of [`Work::matmul`]: `dX = dY·Wᵀ` and `dW += Xᵀ·dY` (twice the
    /// FLOPs); reads dY, X, W and dW, writes dX and dW.
    pub fn matmul_backward(m: usize, k: usize, n: usize, w: &Weight<'_>) -> Work {
        Work {
            flops: 4.0 * (m * k * n) as f64,
            bytes: (4 * (m * n + 2 * m * k + 2 * k * n)) as f64 + weight_bytes(w),
        }
    }
}

fn weight_bytes(w: &Weight<'_>) -> f64 {
    match w.data {
        WeightData::F32(d) => (d.len() * 4) as f64,
        WeightData::Bf16(d) => (d.len() * 2) as f64,
    }
}

/// Runs `f`, booking its time and `work` under `name` when profiling is on.
pub(crate) fn op<T>(name: &'static str, work: Work, f: impl FnOnce() -> T) -> T {
    if !is_enabled() {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let seconds = start.elapsed().as_secs_f64();
    let mut records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    let i = match records.iter().position(|r| r.name == name) {
        Some(i) => i,
        None => {
            records.push(OpStats {
                name,
                ..OpStats::default()
            });
            records.len() - 1
        }
    };
    let r = &mut records[i];
    r.calls += 1;
    r.seconds += seconds;
    r.flops += work.flops;
    r.bytes += work.bytes;
    out
}

/// One op's totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpStats {
    /// The op's name (e.g. `matmul fwd`).
    pub name: &'static str,
    /// Number of calls.
    pub calls: u64,
    /// Total seconds in the op.
    pub seconds: f64,
    /// Total FLOPs (0 for ops counted by bytes only).
    pub flops: f64,
    /// Total bytes moved (at least).
    pub bytes: f64,
}

/// The records of a profiled run, in order of each op's first call.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Per-op totals.
    pub ops: Vec<OpStats>,
}

/// Takes the records gathered so far (and clears them).
pub fn take() -> Profile {
    let mut records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    Profile {
        ops: std::mem::take(&mut *records),
    }
}

/// What the machine allows, for the roofline column.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// f32 FMA peak of the pool, GFLOP/s (`None` without AVX2+FMA).
    pub peak_gflops: Option<f64>,
    /// Streaming read bandwidth of the pool, GB/s.
    pub bandwidth_gbs: f64,
}

impl Machine {
    /// Measures the current rayon pool (about a second).
    pub fn measure() -> Machine {
        Machine {
            peak_gflops: machine::fma_peak_gflops(),
            bandwidth_gbs: machine::read_bandwidth_gbs(),
        }
    }

    /// The roofline for an op of `flops` per `bytes`, in GFLOP/s (or, for an op counted
    /// by bytes only, the bandwidth in GB/s).
    fn roof(&self, flops: f64, bytes: f64) -> f64 {
        if flops == 0.0 {
            return self.bandwidth_gbs;
        }
        let memory = flops / bytes * self.bandwidth_gbs;
        self.peak_gflops.map_or(memory, |p| p.min(memory))
    }
}

impl Profile {
    /// Seconds inside profiled ops.
    pub fn seconds(&self) -> f64 {
        self.ops.iter().map(|o| o.seconds).sum()
    }

    /// A markdown table, sorted by time; shares are of `wall_seconds` (the run's wall
    /// time, which also holds what no op accounts for: sampling, the tokenizer, Rust
    /// glue — shown as `other`).
    pub fn table(&self, wall_seconds: f64, machine: &Machine) -> String {
        let mut ops = self.ops.clone();
        ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        let mut s = String::new();
        let peak = machine
            .peak_gflops
            .map_or("n/a".to_string(), |p| format!("{p:.1} GFLOP/s"));
        writeln!(
            s,
            "profile: {wall_seconds:.3} s wall; machine: FMA peak {peak}, read bandwidth {:.1} GB/s",
            machine.bandwidth_gbs
        )
        .ok();
        writeln!(
            s,
            "| op | calls | total ms | % of time | GFLOP/s | GB/s | % of roofline |"
        )
        .ok();
        writeln!(s, "|---|---:|---:|---:|---:|---:|---:|").ok();
        for o in &ops {
            let gflops = o.flops / o.seconds / 1e9;
            let gbs = o.bytes / o.seconds / 1e9;
            let achieved = if o.flops > 0.0 { gflops } else { gbs };
            let roof = machine.roof(o.flops, o.bytes);
            let gf = if o.flops > 0.0 {
                format!("{gflops:.1}")
            } else {
                "-".into()
            };
            writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {gf} | {gbs:.1} | {:.0} |",
                o.name,
                o.calls,
                1e3 * o.seconds,
                100.0 * o.seconds / wall_seconds,
                100.0 * achieved / roof
            )
            .ok();
        }
        let other = (wall_seconds - self.seconds()).max(0.0);
        writeln!(
            s,
            "| other | | {:.1} | {:.1} | | | |",
            1e3 * other,
            100.0 * other / wall_seconds
        )
        .ok();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpt2_kernels::cpu::matmul::WeightLayout;

    #[test]
    fn books_work_per_op_and_renders_a_table() {
        enable(true);
        let w = vec![0f32; 6];
        let w = Weight::f32(&w, WeightLayout::InOut);
        let x = op("test matmul", Work::matmul(4, 2, 3, &w), || 7);
        op("test matmul", Work::matmul(4, 2, 3, &w), || ());
        op("test stream", Work::bytes(100), || ());
        enable(false);
        op("test stream", Work::bytes(100), || ());
        assert_eq!(x, 7);
        let p = take();
        let mm = p.ops.iter().find(|o| o.name == "test matmul").unwrap();
        assert_eq!((mm.calls, mm.flops), (2, 2.0 * 2.0 * 24.0));
        assert_eq!(mm.bytes, 2.0 * (4.0 * (8.0 + 12.0) + 24.0));
        let st = p.ops.iter().find(|o| o.name == "test stream").unwrap();
        assert_eq!((st.calls, st.bytes), (1, 100.0));
        let m = Machine {
            peak_gflops: Some(100.0),
            bandwidth_gbs: 10.0,
        };
        // Intensity 0.5 FLOP/byte: memory-bound at 5 GFLOP/s.
        assert_eq!(m.roof(50.0, 100.0), 5.0);
        assert_eq!(m.roof(1e6, 1.0), 100.0);
        assert_eq!(m.roof(0.0, 1.0), 10.0);
        let t = p.table(1.0, &m);
        assert!(t.contains("| test matmul | 2 |"), "{t}");
        assert!(t.contains("| other |"), "{t}");
    }
}
