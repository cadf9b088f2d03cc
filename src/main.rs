use std::process::ExitCode;

fn main() -> ExitCode {
    portreap::run().into()
}
