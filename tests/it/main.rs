//! The integration tests, one binary over one shared kit ([`common`]): each module is
//! what was a test binary of its own, named for what it proves (`scan_engine`,
//! `prune_engine`, ...), so `cargo test --test it prune_engine::` runs one of them.
//!
//! Tests of the real engines need one (`bash .ci/setup`; `.ci/test` runs everything);
//! the phases that restart or replace the engine (`no_userland_proxy`, `faults`, the
//! modern engines) are selected by module and environment there.

mod common;

mod aged;
mod baseline;
mod bind_engine;
mod cli;
mod compose_engine;
mod faults;
mod findings_engine;
mod fuzz;
mod hostile;
mod image;
mod load;
mod no_userland_proxy;
mod odd_engine;
mod ownership;
mod podman_engine;
mod prune_engine;
mod recipes;
mod recorded;
mod rootless;
mod scan_engine;
mod tls;
mod why_free_engine;
mod why_recorded;
