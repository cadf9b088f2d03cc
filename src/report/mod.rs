//! Renderers. Each returns a `String`, so output is tested without a terminal.

pub mod bind;
pub mod json;
pub mod metrics;
pub mod prune;
pub mod safe;
pub mod table;
pub mod why;

use crate::model::EngineStatus;

/// A command line portreap suggests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cli {
    /// portreap itself.
    Portreap,
    /// The docker CLI (compose v2 runs under it).
    Docker,
    /// Compose v1, `docker-compose`, which takes the docker CLI's endpoint options.
    ComposeV1,
    /// The podman CLI.
    Podman,
}

/// The start of a suggested command, naming the engine the answer came from: pasted, it
/// must act on that engine and no other, whatever the shell's DOCKER_HOST says. Nothing
/// is added for the default socket; a context is named (its TLS material comes with it);
/// any other endpoint is given as it is, shell-quoted.
pub(crate) fn command(engine: &EngineStatus, cli: Cli) -> String {
    let q = crate::shell::quote;
    let program = match cli {
        Cli::Portreap => "portreap",
        Cli::Docker => "docker",
        Cli::ComposeV1 => "docker-compose",
        Cli::Podman => "podman",
    };
    let context = engine.source.named_context();
    let option = match (cli, context) {
        (Cli::Podman, _) if engine.endpoint == "unix:///run/podman/podman.sock" => String::new(),
        (Cli::Podman, _) => format!(" --url {}", q(&engine.endpoint)),
        (_, Some(name)) => format!(" --context {}", q(name)),
        _ if engine.endpoint == crate::engine::endpoint::DEFAULT_HOST => String::new(),
        (Cli::Portreap, None) => format!(" --host {}", q(&engine.endpoint)),
        (_, None) => format!(" -H {}", q(&engine.endpoint)),
    };
    format!("{program}{option}")
}

/// `portreap`, naming the engine the snapshot's answer came from (see [`command`]), and
/// every other engine when several were asked: a container of a rootless engine, or a
/// forwarder judged against all of them, is only seen, and freed, from the same view.
pub(crate) fn portreap(snapshot: &crate::model::Snapshot) -> String {
    let cmd = command(&snapshot.engine, Cli::Portreap);
    if snapshot.engines.is_empty() {
        cmd
    } else {
        format!("{cmd} --all-engines")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(endpoint: &str, source: &str) -> EngineStatus {
        EngineStatus {
            endpoint: endpoint.into(),
            source: source.parse().unwrap(),
            ..EngineStatus::default()
        }
    }

    #[test]
    fn suggestions_name_the_engine_unless_it_is_the_default() {
        let default = engine("unix:///var/run/docker.sock", "default");
        assert_eq!(command(&default, Cli::Docker), "docker");
        assert_eq!(command(&default, Cli::Portreap), "portreap");
        let other = engine("unix:///srv/my engine/docker.sock", "--host");
        assert_eq!(
            command(&other, Cli::Docker),
            "docker -H 'unix:///srv/my engine/docker.sock'"
        );
        assert_eq!(
            command(&other, Cli::Portreap),
            "portreap --host 'unix:///srv/my engine/docker.sock'"
        );
        let ctx = engine("tcp://build:2376", "context build");
        assert_eq!(command(&ctx, Cli::Docker), "docker --context build");
        assert_eq!(
            command(&ctx, Cli::ComposeV1),
            "docker-compose --context build"
        );
        assert_eq!(
            command(&other, Cli::ComposeV1),
            "docker-compose -H 'unix:///srv/my engine/docker.sock'"
        );
        assert_eq!(command(&ctx, Cli::Portreap), "portreap --context build");
        let podman = engine("unix:///run/podman/podman.sock", "--host");
        assert_eq!(command(&podman, Cli::Podman), "podman");
        let podman = engine("unix:///run/user/1000/podman/podman.sock", "--host");
        assert_eq!(
            command(&podman, Cli::Podman),
            "podman --url unix:///run/user/1000/podman/podman.sock"
        );
    }
}
