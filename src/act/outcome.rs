//! What acting on one target came to, typed: done, skipped and why (the target changed,
//! went, or is one portreap never signals), or failed and at which call. Rendered in words
//! by `Display`, where the report needs them.

use std::fmt;
use std::io;

use super::execute::Signal;
use crate::engine::Error as EngineError;
use crate::model::{ContainerState, Health};

/// What happened to one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not run: dry run.
    Planned,
    /// Done.
    Done,
    /// Not done because the target changed or is gone.
    Skipped(Skip),
    /// Tried and failed.
    Failed(Failure),
}

impl Outcome {
    /// JSON name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Done => "done",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The reason of a skip or failure.
    pub fn detail(&self) -> Option<String> {
        match self {
            Outcome::Skipped(why) => Some(why.to_string()),
            Outcome::Failed(why) => Some(why.to_string()),
            Outcome::Planned | Outcome::Done => None,
        }
    }
}

/// Why an action was not taken at the instant of acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The container was removed meanwhile.
    ContainerGone,
    /// The process exited meanwhile.
    Exited(u32),
    /// The target is not what the plan saw.
    Changed(Changed),
    /// The process read now is one portreap never signals (the reason says which).
    NeverAct(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::ContainerGone => f.write_str("the container no longer exists"),
            Skip::Exited(pid) => write!(f, "pid {pid} has already exited"),
            Skip::Changed(how) => how.fmt(f),
            Skip::NeverAct(why) => f.write_str(why),
        }
    }
}

/// What changed since the plan, so that the action no longer holds: the target is
/// skipped, and the report says which of these it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The name now belongs to another container (this id).
    OtherContainer(String),
    /// The container left the states that justified the action.
    State {
        /// The states the plan accepted.
        was: Vec<ContainerState>,
        /// The state now.
        now: ContainerState,
    },
    /// The health check that failed passes now (or is no longer reported).
    Recovered(Option<Health>),
    /// A compose path that had to stay missing exists again.
    PathBack(String),
    /// A compose path can no longer be told missing.
    PathUnknown {
        /// The path.
        path: String,
        /// Why it cannot be checked.
        why: String,
    },
    /// The orphan's service is defined again in its compose files.
    ServiceBack(String),
    /// The orphan's compose files can no longer be judged.
    FilesNotJudged(String),
    /// The PID belongs to another process than the one planned.
    OtherProcess {
        /// The PID.
        pid: u32,
        /// Its name now.
        name: String,
        /// What differs: another process, program, user or command line.
        what: &'static str,
    },
}

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Changed::OtherContainer(id) => {
                write!(f, "the name now belongs to another container ({id})")
            }
            Changed::State { was, now } => {
                let was: Vec<&str> = was.iter().map(ContainerState::as_str).collect();
                write!(f, "its state changed: was {}, now {now}", was.join("/"))
            }
            Changed::Recovered(health) => write!(
                f,
                "it recovered: health is now {}",
                health.as_ref().map_or("not reported", Health::as_str)
            ),
            Changed::PathBack(path) => write!(f, "{path} exists again"),
            Changed::PathUnknown { path, why } => {
                write!(f, "{path} can no longer be checked ({why})")
            }
            Changed::ServiceBack(service) => {
                write!(f, "service {service} is defined again in its compose files")
            }
            Changed::FilesNotJudged(reason) => {
                write!(f, "its compose files can no longer be judged ({reason})")
            }
            Changed::OtherProcess { pid, name, what } => {
                write!(f, "pid {pid} now belongs to {what} ({name}), not signalled")
            }
        }
    }
}

/// Why an action that was tried did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The engine could not tell how the container is now, so nothing was done.
    Recheck(EngineError),
    /// An engine call on the container failed.
    Engine {
        /// Which call.
        call: EngineCall,
        /// The engine's error.
        error: EngineError,
    },
    /// The process could not be pinned for signalling.
    Pin {
        /// Its PID.
        pid: u32,
        /// The system's error.
        error: OsError,
    },
    /// A signal could not be sent.
    Signal {
        /// Which signal.
        signal: Signal,
        /// The system's error.
        error: OsError,
    },
    /// The process was still there after SIGKILL and the wait.
    SurvivedKill(u32),
}

/// The engine calls that act on a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineCall {
    /// Unpause (a paused container cannot be stopped).
    Unpause,
    /// Stop, with the grace period.
    Stop,
    /// Remove.
    Remove,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Recheck(e) => write!(f, "cannot re-check the container: {e}"),
            Failure::Engine { call, error } => {
                let call = match call {
                    EngineCall::Unpause => "unpause",
                    EngineCall::Stop => "stop",
                    EngineCall::Remove => "remove",
                };
                write!(f, "{call} failed: {error}")
            }
            Failure::Pin { pid, error } => write!(f, "cannot pin pid {pid}: {error}"),
            Failure::Signal { signal, error } => write!(f, "{} failed: {error}", signal.name()),
            Failure::SurvivedKill(pid) => write!(f, "pid {pid} survived SIGKILL"),
        }
    }
}

/// An operating system's error, kept comparable ([`io::Error`] is neither `Clone` nor
/// `Eq`): its kind and, for an OS error, the error number, which says it in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsError {
    kind: io::ErrorKind,
    code: Option<i32>,
}

impl From<&io::Error> for OsError {
    fn from(e: &io::Error) -> Self {
        OsError {
            kind: e.kind(),
            code: e.raw_os_error(),
        }
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => io::Error::from_raw_os_error(code).fmt(f),
            None => self.kind.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_os_error_says_what_the_io_error_said() {
        let denied = io::Error::from_raw_os_error(libc::EPERM);
        let kept = OsError::from(&denied);
        assert_eq!(kept.to_string(), denied.to_string());
        let failure = Failure::Signal {
            signal: Signal::Term,
            error: kept,
        };
        assert_eq!(failure.to_string(), format!("SIGTERM failed: {denied}"));
        let odd = io::Error::new(io::ErrorKind::Unsupported, "no pidfd");
        assert_eq!(OsError::from(&odd).to_string(), "unsupported");
    }
}
