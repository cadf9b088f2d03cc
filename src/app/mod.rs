//! Wiring: parse, dispatch to the verb's module, and map the outcome to an exit code.
//! Each verb is one small module: it gathers facts (`crate::facts`), runs the pure
//! stages (`analyze`, the `prune` planners), renders (`report`) and, for `prune` and
//! `free` only, acts (`act`).

mod act;
mod baseline;
mod free;
mod meta;
mod metrics;
mod output;
mod scan;
mod why;

use std::io;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Global, Scan, UsageError};

/// Exit statuses (documented in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success, nothing to report.
    Ok = 0,
    /// Leaks found (with `--check`), or an action failed; also any runtime error.
    Problem = 1,
    /// Usage error.
    Usage = 2,
    /// The engine could not be reached by a command that needs it.
    EngineUnreachable = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Runs portreap with the process arguments and returns its exit status. Errors are
/// printed here, one line each.
pub fn run() -> Exit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    match dispatch(cli) {
        Ok(exit) => exit,
        Err(e) if is_broken_pipe(&e) => Exit::Ok,
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(usage) => {
                crate::messages::stderr_line(&format!("portreap: {usage}"));
                Exit::Usage
            }
            None => {
                crate::messages::stderr_line(&format!("portreap: error: {e:#}"));
                Exit::Problem
            }
        },
    }
}

/// clap's help and version go to stdout as usual; its errors are cut to their first line,
/// so every usage error is one line on stderr.
fn clap_error(e: clap::Error) -> Exit {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Exit::Ok
        }
        _ => {
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
            let mut line = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" lists them below.
            if line.ends_with(':') {
                let listed: Vec<&str> = lines
                    .take_while(|l| l.starts_with(' '))
                    .map(str::trim)
                    .collect();
                line = format!("{line} {}", listed.join(", "));
            }
            crate::messages::stderr_line(&format!("portreap: {line}"));
            Exit::Usage
        }
    }
}

pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    crate::messages::set(cli.global.quiet, cli.global.verbose);
    let global = Global::new(&cli.global)?;
    if cli.command.is_some() && cli.scan.any() {
        return Err(UsageError(
            "scan options (--all, --json, --check, --port) go after the subcommand, or use them without one".into(),
        )
        .into());
    }
    match cli.command {
        None => scan::scan(&global, &Scan::new(&cli.scan)),
        Some(Command::Scan(args)) => scan::scan(&global, &Scan::new(&args)),
        Some(Command::Prune(args)) => act::act(
            &global,
            &crate::config::Act::new(&args.act)?,
            &crate::config::Verb::prune(
                &args,
                crate::settings::load(global.config.as_deref())?.as_ref(),
            )?,
        ),
        Some(Command::Free(args)) => act::act(
            &global,
            &crate::config::Act::new(&args.act)?,
            &crate::config::Verb::free(&args),
        ),
        Some(Command::Why(args)) => why::why(&global, &args),
        Some(Command::Metrics(args)) => metrics::metrics(&global, &args),
        Some(Command::Baseline(crate::cli::BaselineCommand::Save { file })) => {
            baseline::save(&global, &file)
        }
        Some(Command::Config) => meta::config(&global),
        Some(Command::Completions { shell }) => meta::completions(shell),
        Some(Command::Man) => meta::man(),
        Some(Command::Debug(debug)) => meta::debug(&global, debug),
    }
}
