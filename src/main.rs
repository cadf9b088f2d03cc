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
        eprintln!(
            "portreap: internal error: {info}; please report it with the output of `portreap debug snapshot`"
        );
    }));
    portreap::run().into()
}
