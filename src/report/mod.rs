//! Renderers. Each returns a `String`, so output is tested without a terminal.

pub mod bind;
pub mod json;
pub mod metrics;
pub mod prune;
pub mod safe;
pub mod table;
pub mod why;
