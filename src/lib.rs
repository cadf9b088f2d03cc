//! portreap: who is holding my port, and is it a leak?
//!
//! Data flows one way: facts in ([`host`], [`engine`]) → pure analysis ([`analyze`]) →
//! report ([`report`]). Only the edges touch the system.

pub mod analyze;
pub mod cli;
pub mod config;
pub mod engine;
pub mod host;
pub mod messages;
pub mod model;
pub mod portspec;
pub mod prune;
pub mod report;
pub mod safe_file;
pub mod settings;
pub mod shell;

mod app;
mod facts;

pub use app::{run, Exit};
