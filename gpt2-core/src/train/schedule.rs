//! Learning-rate schedules, as nanoGPT: a linear warmup from `lr/warmup` to `lr` over the
//! first `warmup` steps, then constant, or a cosine decay to `min_lr_frac·lr` at the last
//! step (nanoGPT's `min_lr = learning_rate / 10` is `min_lr_frac = 0.1`, our default).
//! Steps are counted from 1.

use std::f64::consts::PI;

/// The shape of the schedule after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// `lr` until the end.
    Constant,
    /// Half a cosine from `lr` down to `min_lr_frac·lr` at step `total`.
    Cosine,
}

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// Constant or cosine.
    pub kind: ScheduleKind,
    /// The peak learning rate.
    pub lr: f64,
    /// Steps of linear warmup (0: none).
    pub warmup: u64,
    /// The last step (where the cosine reaches its minimum).
    pub total: u64,
    /// The cosine's floor as a fraction of `lr`.
    pub min_lr_frac: f64,
}

impl Schedule {
    /// The learning rate of step `step` (counted from 1).
    pub fn lr(&self, step: u64) -> f64 {
        if step <= self.warmup {
            return self.lr * step as f64 / self.warmup as f64;
        }
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Cosine => {
                let span = self.total.saturating_sub(self.warmup).max(1) as f64;
                let progress = ((step - self.warmup) as f64 / span).min(1.0);
                let min_lr = self.min_lr_frac * self.lr;
                min_lr + 0.5 * (1.0 + (PI * progress).cos()) * (self.lr - min_lr)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            lr: 1e-3,
            warmup: 10,
            total: 110,
            min_lr_frac: 0.1,
        };
        assert_eq!(s.lr(1), 1e-4);
        assert_eq!(s.lr(10), 1e-3);
        assert!((s.lr(60) - 0.55e-3).abs() < 1e-15, "midpoint {}", s.lr(60));
        assert!((s.lr(110) - 1e-4).abs() < 1e-15);
        assert!((s.lr(500) - 1e-4).abs() < 1e-15, "stays at the floor");
        assert!((11..110).all(|k| s.lr(k + 1) < s.lr(k)), "decreasing");
        let c = Schedule {
            kind: ScheduleKind::Constant,
            warmup: 0,
            ..s
        };
        assert_eq!(c.lr(1), 1e-3);
        assert_eq!(c.lr(1000), 1e-3);
    }
}
