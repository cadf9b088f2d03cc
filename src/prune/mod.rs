//! `prune`: plan (pure) → confirm → re-check and act → verify.

pub mod baseline;
pub mod execute;
pub mod lock;
pub mod plan;
pub mod system;

pub use execute::{execute, Outcome, Report, Timing};
pub use plan::{plan, Filters, Plan};

#[cfg(test)]
mod tests;
