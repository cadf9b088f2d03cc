//! What goes to stderr besides errors, by verbosity (like ripgrep's messages module): the
//! level is set once from `-q`/`-v`, read anywhere. Never stdout, so `--json` stays clean.

use std::sync::atomic::{AtomicU8, Ordering};

const QUIET: u8 = 0;
const NORMAL: u8 = 1;
const VERBOSE: u8 = 2;

static LEVEL: AtomicU8 = AtomicU8::new(NORMAL);

/// Sets the level from the flags.
pub fn set(quiet: bool, verbose: bool) {
    let level = match (quiet, verbose) {
        (true, _) => QUIET,
        (false, true) => VERBOSE,
        (false, false) => NORMAL,
    };
    LEVEL.store(level, Ordering::Relaxed);
}

/// Whether notes (engine line, progress, hints) are printed: not with `-q`.
pub fn notes() -> bool {
    LEVEL.load(Ordering::Relaxed) >= NORMAL
}

/// Whether details (timings, counts) are printed: with `-v`.
pub fn details() -> bool {
    LEVEL.load(Ordering::Relaxed) >= VERBOSE
}

/// Writes a line to stderr, through the last guard against escapes from outside text
/// (see [`crate::report::safe::text`]). Unlike `eprintln!`, a closed stderr is not a
/// panic: notes are not worth dying for.
pub fn stderr_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        crate::report::safe::text(text)
    );
}

/// Writes a line of JSON to stderr as it is: serde already escaped it.
pub fn stderr_json(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints a note to stderr unless quiet.
pub fn note(text: &str) {
    if notes() {
        stderr_line(text);
    }
}

/// Prints a detail to stderr when verbose.
pub fn detail(text: &str) {
    if details() {
        stderr_line(&format!("portreap: {text}"));
    }
}
