//! Where an ordinary holder of a port came from, told from facts the kernel keeps (parent,
//! session, terminal): a forgotten `npm run dev` whose terminal closed reads differently
//! from a service, and a person deciding whether to kill it needs that difference.

use crate::model::{HolderContext, HostFacts, Process};

/// Shells between a program and whoever started it: `npm run dev` runs `sh -c "node
/// server.js"`, and the sh says nothing a person wants to know.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh", "ash", "busybox",
];

/// An ordinary process's origin, as [`origin`] reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Working directory, session and terminal.
    pub context: &'a HolderContext,
    /// The nearest ancestor that is not a shell; `None` when the parent is gone.
    pub started_by: Option<&'a Process>,
    /// The shells between the process and whoever started it, nearest first.
    pub through: Vec<&'a Process>,
    /// Whatever started it has exited: the chain ends at PID 1 below a process that
    /// leads no session (services lead sessions of their own, a program a shell left
    /// behind does not).
    pub parent_gone: bool,
    /// The leader of its session (the shell of a terminal, usually) has exited.
    pub session_ended: bool,
}

/// The origin of `pid`, when its context was read (only ordinary holders of asked ports).
pub fn origin(host: &HostFacts, pid: u32) -> Option<Origin<'_>> {
    let context = host.contexts.get(&pid)?;
    let mut below = host.processes.get(&pid)?;
    let mut through = Vec::new();
    let mut started_by = None;
    for ancestor in host.ancestors(pid) {
        if ancestor.pid != 1 && SHELLS.contains(&ancestor.name.as_str()) {
            through.push(ancestor);
            below = ancestor;
            continue;
        }
        started_by = Some(ancestor);
        break;
    }
    let parent_gone = started_by.is_some_and(|p| p.pid == 1) && below.pid != context.session;
    Some(Origin {
        context,
        started_by: started_by.filter(|_| !parent_gone),
        through,
        parent_gone,
        session_ended: context.session != pid && context.session != 0 && !context.session_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ppid: u32, name: &str) -> Process {
        Process {
            pid,
            ppid,
            uid: Some(1000),
            name: name.into(),
            cmdline: vec![name.into()],
            start_ticks: Some(1),
            container_id: None,
            started: None,
            exe: None,
            pid_ns: None,
            mnt_ns: None,
            session: None,
        }
    }

    fn host(processes: &[Process], pid: u32, session: u32, session_alive: bool) -> HostFacts {
        let mut host = HostFacts::default();
        for p in processes {
            host.processes.insert(p.pid, p.clone());
        }
        host.contexts.insert(
            pid,
            HolderContext {
                cwd: Some("/home/a/shop".into()),
                session,
                session_alive,
                tty: Some("pts/3".into()),
            },
        );
        host
    }

    #[test]
    fn shells_are_skipped_up_to_the_starter() {
        let procs = [
            process(1, 0, "systemd"),
            process(700, 1, "bash"),
            process(812, 700, "npm run dev"),
            process(813, 812, "sh"),
            process(814, 813, "node"),
        ];
        let host = host(&procs, 814, 700, true);
        let o = origin(&host, 814).unwrap();
        assert_eq!(o.started_by.map(|p| p.pid), Some(812));
        assert_eq!(o.through.iter().map(|p| p.pid).collect::<Vec<_>>(), [813]);
        assert!(!o.parent_gone && !o.session_ended);
    }

    #[test]
    fn a_login_shell_under_init_started_it() {
        let procs = [
            process(1, 0, "init"),
            process(5, 1, "bash"),
            process(6, 5, "node"),
        ];
        let h = host(&procs, 6, 5, true);
        let o = origin(&h, 6).unwrap();
        assert_eq!(o.started_by.map(|p| p.pid), Some(1));
        assert_eq!(o.through.len(), 1);
        assert!(!o.parent_gone);
    }

    #[test]
    fn a_program_left_behind_is_told_from_a_service() {
        let procs = [
            process(1, 0, "init"),
            process(8, 1, "sh"),
            process(9, 8, "node"),
        ];
        // (sh -c 'node' &) from a live shell (session 4): the sh was adopted by init.
        let h = host(&procs, 9, 4, true);
        let o = origin(&h, 9).unwrap();
        assert!(o.parent_gone && !o.session_ended);
        assert_eq!(o.started_by, None);
        assert_eq!(o.through.len(), 1);
        // nohup node & from a terminal since closed: the session outlived its leader.
        let h = host(&procs[..1], 9, 4, false);
        let o = origin(&h, 9);
        assert!(o.is_none(), "node itself was not read");
        let alone = [process(1, 0, "init"), process(9, 1, "node")];
        let h = host(&alone, 9, 4, false);
        let o = origin(&h, 9).unwrap();
        assert!(o.parent_gone && o.session_ended);
        // A service leads its own session under init.
        let h = host(&alone, 9, 9, true);
        let o = origin(&h, 9).unwrap();
        assert!(!o.parent_gone && !o.session_ended);
        assert_eq!(o.started_by.map(|p| p.pid), Some(1));
    }

    #[test]
    fn no_context_no_origin() {
        let host = HostFacts::default();
        assert_eq!(origin(&host, 9), None);
    }
}
