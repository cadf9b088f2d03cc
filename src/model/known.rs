//! The processes portreap knows by role. A name is only a first sieve, since any process
//! can name itself anything: identity is proven from the executable, the user and the
//! parent (see `analyze::forwarder`).

/// Docker's userland proxy.
pub const DOCKER_PROXY: &str = "docker-proxy";
/// The Docker engine.
pub const DOCKERD: &str = "dockerd";
/// Podman (its API service is `podman system service`).
pub const PODMAN: &str = "podman";
/// Podman's container monitor, which holds a rootful container's published ports.
pub const CONMON: &str = "conmon";

/// The forwarders of engines that run in a VM or a user namespace, each a process on
/// this host holding published ports for every container of its engine: the one
/// table the descriptor walk's sieve, the attribution and the never-act list read.
pub const DESKTOP_FORWARDERS: [DesktopForwarder; 7] = [
    DesktopForwarder {
        product: "Docker Desktop",
        names: &["com.docker.backend", "com.docker.back"],
        prefixes: &["vpnkit"],
        cmdline: &["docker-desktop"],
        // docker-desktop-user-distro, cut at 15 bytes.
        other_comms: &["docker-desktop-"],
    },
    DesktopForwarder {
        product: "Docker Desktop (WSL)",
        names: &["wslrelay", "wslrelay.exe"],
        prefixes: &[],
        cmdline: &[],
        other_comms: &[],
    },
    DesktopForwarder {
        product: "OrbStack",
        names: &[],
        prefixes: &["OrbStack"],
        cmdline: &["orbstack"],
        other_comms: &[],
    },
    // Colima and Lima forward through an ssh or limactl process of their own.
    DesktopForwarder {
        product: "Colima",
        names: &[],
        prefixes: &[],
        cmdline: &["colima"],
        other_comms: &["ssh", "limactl"],
    },
    DesktopForwarder {
        product: "Lima",
        names: &["limactl"],
        prefixes: &[],
        cmdline: &["/.lima/"],
        other_comms: &["ssh"],
    },
    DesktopForwarder {
        product: "rootless Docker",
        names: &["rootlesskit"],
        prefixes: &[],
        cmdline: &[],
        other_comms: &[],
    },
    DesktopForwarder {
        product: "rootless Podman",
        names: &[],
        prefixes: &["rootlessport"],
        cmdline: &[],
        other_comms: &[],
    },
];

/// A desktop or rootless engine's port forwarder, as [`DESKTOP_FORWARDERS`] lists it.
#[derive(Debug)]
pub struct DesktopForwarder {
    /// The product people know it by.
    pub product: &'static str,
    /// Its `comm` or program file name (`argv[0]` without the directory), exactly.
    pub names: &'static [&'static str],
    /// Starts of its `comm` or program file name.
    pub prefixes: &'static [&'static str],
    /// Words of its command line (lower case) that name the product.
    pub cmdline: &'static [&'static str],
    /// Further `comm`s its processes have, told apart by their command line.
    pub other_comms: &'static [&'static str],
}

impl DesktopForwarder {
    /// Whether a process of this `comm` may be it: the descriptor walk's sieve.
    pub fn may_be(&self, comm: &str) -> bool {
        self.is_named(comm) || self.other_comms.contains(&comm)
    }

    /// Whether the process with this `comm`, program file name and lower-cased
    /// command line is it.
    pub fn is(&self, comm: &str, program: &str, cmdline: &str) -> bool {
        self.is_named(comm)
            || self.is_named(program)
            || self.cmdline.iter().any(|w| cmdline.contains(w))
    }

    fn is_named(&self, name: &str) -> bool {
        self.names.contains(&name) || self.prefixes.iter().any(|p| name.starts_with(p))
    }
}

/// The engines and their runtime, never signalled: `containerd-shim*` by prefix.
pub const NEVER_SIGNALLED: [&str; 3] = [DOCKERD, "containerd", PODMAN];

/// Whether a process of this `comm` (at most 15 bytes) may hold a port for a
/// container: the forwarders and engines portreap knows.
pub fn may_forward(comm: &str) -> bool {
    [DOCKER_PROXY, DOCKERD, CONMON].contains(&comm)
        || DESKTOP_FORWARDERS.iter().any(|f| f.may_be(comm))
}

/// Whether a process of this `comm` may be an engine (then its facts are read).
pub fn may_be_engine(comm: &str) -> bool {
    comm == DOCKERD || comm == PODMAN
}
