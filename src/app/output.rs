//! Where output goes: human text through the escape guard, machine text as it is.

use std::io::{self, Write};

use crate::report;

/// Writes human output through the last guard against escapes from outside text.
pub(super) fn write_human(text: &str) -> anyhow::Result<()> {
    write_stdout(&report::safe::text(text))
}

/// Writes JSON, completions and the man page as they are.
pub(super) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints a line of human output: to stdout normally, to stderr (a note, silenced by
/// `-q`) when stdout carries JSON.
/// A reader of stdout that went away is not a failure of the action being reported.
pub(super) fn say(json: bool, text: &str) {
    if json {
        crate::messages::note(text);
    } else {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{}", report::safe::text(text));
        let _ = out.flush();
    }
}

pub(super) fn confirm() -> bool {
    use std::io::{BufRead, IsTerminal};
    if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
        return false;
    }
    {
        use std::io::Write;
        let mut err = io::stderr().lock();
        let _ = write!(err, "Proceed? [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
