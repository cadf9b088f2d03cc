//! portreap: who is holding my port, and is it a leak?
//!
//! Data flows one way, in stages; only the first and the last touch the system:
//!
//! 1. **facts** (`facts::gather`, over [`host`] and [`engine`]): the kernel's sockets,
//!    `/proc`, every engine's containers, the compose paths, into one
//!    [`model::Snapshot`]. bollard's types stop in [`engine`]; nothing here judges.
//! 2. **analysis** ([`analyze`], pure): every socket's owner (which engine may judge a
//!    forwarder is `analyze::ownership`), then the finding rules, one function per kind.
//! 3. **plan** ([`plan`], pure: [`plan::prune`], [`plan::free`], [`plan::baseline`]):
//!    findings or named ports to actions, with what must still hold when each is taken.
//! 4. **act** ([`act`]: [`act::execute`](mod@act::execute) through the `Ops` trait, the real
//!    side effects in [`act::system`], one at a time under [`act::lock`]): re-check, act,
//!    verify. Only `prune` and `free` get here.
//! 5. **report** ([`report`]): renderers over the typed results (table, JSON, `why`,
//!    metrics, prune reports); output passes [`report::safe`] last.
//!
//! The verbs (`app`, private) wire the stages, one small module each. A new finding kind
//! is a rule in [`analyze::findings`] (and a `Kind`), a recorded case and an end-to-end
//! test; a new forwarder is one row of [`model::known::DESKTOP_FORWARDERS`] or a role in
//! [`analyze::forwarder`]; a new engine kind is [`model::EngineKind`], its discovery in
//! `host::engines` and its API quirks at the [`engine`] boundary.

pub mod act;
pub mod analyze;
pub mod cli;
pub mod config;
pub mod engine;
pub mod host;
pub mod messages;
pub mod model;
pub mod plan;
pub mod portspec;
pub mod report;
pub mod safe_file;
pub mod settings;
pub mod shell;
pub mod time;

mod app;
mod facts;
#[cfg(test)]
mod testkit;

pub use app::{run, Exit};
