//! `why --json`'s section: per port, whether a bind would succeed, who wants it, next steps.

use serde::Serialize;

use super::{explain_holder, uses_on, wanter_lines};
use crate::analyze::why::{holders, wanters, Asked, Index};
use crate::analyze::Analysis;
use crate::model::Snapshot;

#[derive(Serialize)]
struct WantedDoc<'a> {
    id: &'a str,
    name: &'a str,
    state: &'a str,
    reason: String,
}

#[derive(Serialize)]
struct WhyDoc<'a> {
    proto: &'static str,
    port: u16,
    /// A plain bind(2) on every address would succeed now.
    free: bool,
    /// A bind with SO_REUSEADDR would succeed now; null when only TIME_WAIT connections
    /// are left, which let it through only if their own socket set SO_REUSEADDR too
    /// (the kernel does not say).
    free_with_reuseaddr: Option<bool>,
    /// The port's sockets that do not listen but block a plain bind.
    sockets: Vec<crate::report::bind::UseDoc>,
    wanted_by: Vec<WantedDoc<'a>>,
    next: Vec<String>,
}

/// The `why` part of `why --json`: per port, whether it is free, who wants it, next steps.
pub fn json_section(
    snapshot: &Snapshot,
    analysis: &Analysis,
    asked: &[Asked],
) -> serde_json::Value {
    let index = Index::new(snapshot, analysis);
    let docs: Vec<WhyDoc<'_>> = asked
        .iter()
        .map(|a| {
            let found = holders(&index, *a);
            let uses = uses_on(snapshot, *a);
            let port = format!("{}/{}", a.port, a.proto);
            let mut next: Vec<String> = found
                .iter()
                .flat_map(|h| explain_holder(snapshot, *a, h).next)
                .collect();
            if found.is_empty() {
                next.extend(
                    crate::report::bind::explain(snapshot, &port, &uses)
                        .into_iter()
                        .flat_map(|e| e.next),
                );
            }
            WhyDoc {
                proto: a.proto.as_str(),
                port: a.port,
                free: found.is_empty() && uses.is_empty(),
                free_with_reuseaddr: match (
                    found.is_empty(),
                    uses.is_empty(),
                    uses.time_wait_only(),
                ) {
                    (true, true, _) => Some(true),
                    (true, false, true) => None,
                    _ => Some(false),
                },
                sockets: crate::report::bind::docs(&uses),
                wanted_by: wanters(&index, *a)
                    .iter()
                    .map(|w| {
                        let c = &snapshot.containers[w.container];
                        WantedDoc {
                            id: &c.id,
                            name: &c.name,
                            state: c.state.as_str(),
                            reason: wanter_lines(snapshot, w).0,
                        }
                    })
                    .collect(),
                next,
            }
        })
        .collect();
    // Serialising plain structs of strings, numbers and booleans cannot fail.
    serde_json::to_value(docs).expect("JSON of plain data")
}
