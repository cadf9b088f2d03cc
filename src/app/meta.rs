//! The verbs about portreap itself: `config`, `completions`, `man`, `debug`.

use clap::CommandFactory;

use super::output::write_stdout;
use super::Exit;
use crate::cli::{Cli, DebugCommand};
use crate::config::Global;
use crate::facts::gather;

/// `config`: every prune setting, its value and where the value came from.
pub(super) fn config(global: &Global) -> anyhow::Result<Exit> {
    let loaded = crate::settings::load(global.config.as_deref())?;
    let (_, settings) = crate::config::prune_filters(None, loaded.as_ref())?;
    let mut text = match &loaded {
        Some(l) => format!("config file: {}\n", l.path.display()),
        None => "config file: none\n".to_owned(),
    };
    for s in settings {
        text.push_str(&format!(
            "prune.{:<18} {:<36} ({})\n",
            s.name, s.value, s.source
        ));
    }
    write_stdout(&text)?;
    Ok(Exit::Ok)
}

/// `completions SHELL`.
pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "portreap", &mut out);
    write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Ok)
}

/// `man`: the man page, roff.
pub(super) fn man() -> anyhow::Result<Exit> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Ok)
}

/// `debug snapshot` (the facts, for a bug report or `--snapshot`) and `debug panic`.
pub(super) fn debug(global: &Global, command: DebugCommand) -> anyhow::Result<Exit> {
    match command {
        DebugCommand::Panic => panic!("deliberate panic (portreap debug panic)"),
        DebugCommand::Snapshot => {
            let snapshot = gather(global, crate::host::Owners::All)?;
            let mut text = serde_json::to_string_pretty(&snapshot)?;
            text.push('\n');
            write_stdout(&text)?;
            Ok(Exit::Ok)
        }
    }
}
