use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A panic is a bug: say so in one line, with what helps a report, not a backtrace wall
    // (RUST_BACKTRACE still works for whoever debugs it).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            default_hook(info);
            return;
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = message.replace('\n', " ");
        // stderr may be closed; a failed report must not panic again.
        let _ = writeln!(
            std::io::stderr(),
            "portreap: internal error: {message}{place}; please report it with the output of `portreap debug snapshot`"
        );
    }));
    portreap::run().into()
}
