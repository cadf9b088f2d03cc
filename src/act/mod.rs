//! Carrying a plan out: each action re-checked right before it is taken, taken through
//! the [`execute::Ops`] trait (the real system in [`system`], a fake in the tests), and the
//! port checked afterwards. The only stage with side effects, reached by `prune` and `free`
//! alone, under the [`lock`].

pub mod execute;
pub mod jobs;
pub mod lock;
pub mod outcome;
mod recheck;
pub mod system;

pub use execute::{execute, Report, Timing};
pub use outcome::Outcome;

#[cfg(test)]
mod tests;
