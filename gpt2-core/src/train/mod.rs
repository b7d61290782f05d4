//! Training: the optimizer, learning-rate schedules, data, checkpoints, and the loop
//! that ties them to the model's forward and backward passes.

pub mod optim;
pub mod schedule;
