//! Acting on a thread of its own, fed actions as they are proven: prune starts on a
//! container its own record proves (see [`super::plan::early_action`]) while the engine is
//! still inspecting the others, then on the rest of the plan. One queue, one bound on
//! concurrency, one stream of reports, whenever an action was proven.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::execute::{execute_stream, Report, Timing};
use super::plan::PlannedAction;
use super::system::System;

/// What the worker hands back: every report, in the order the actions completed, and how
/// long acting took from the first action in.
type Done = anyhow::Result<(Vec<Report>, Option<Duration>)>;

/// The acting thread and its queue.
pub struct Worker {
    actions: UnboundedSender<PlannedAction>,
    reports: mpsc::Receiver<Report>,
    thread: std::thread::JoinHandle<Done>,
}

impl Worker {
    /// Starts the thread; it acts on each action sent, as it arrives.
    pub fn start(system: System, timing: Timing) -> Worker {
        let (actions, mut queue) = unbounded_channel::<PlannedAction>();
        let (report_tx, reports) = mpsc::channel();
        let thread = std::thread::spawn(move || -> Done {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
            let first = std::cell::Cell::new(None);
            let incoming = futures_util::stream::poll_fn(|cx| {
                let next = queue.poll_recv(cx);
                if matches!(next, std::task::Poll::Ready(Some(_))) && first.get().is_none() {
                    first.set(Some(Instant::now()));
                }
                next
            });
            let reports = runtime.block_on(execute_stream(&system, incoming, timing, |r| {
                // The receiver lives until every report is read; a send cannot fail
                // before that, and after it nobody is listening.
                let _ = report_tx.send(r.clone());
            }));
            Ok((reports, first.get().map(|t| t.elapsed())))
        });
        Worker {
            actions,
            reports,
            thread,
        }
    }

    /// Queues an action; `false` if the thread is gone (it could not start its runtime).
    pub fn send(&self, action: PlannedAction) -> bool {
        self.actions.send(action).is_ok()
    }

    /// Closes the queue, shows each report as its action completes, and waits for the last.
    pub fn finish(self, mut progress: impl FnMut(&Report)) -> Done {
        let Worker {
            actions,
            reports,
            thread,
        } = self;
        drop(actions);
        for report in reports {
            progress(&report);
        }
        match thread.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
