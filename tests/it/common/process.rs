//! Helper processes: guarded children, stale forwarders, listeners, other users and a
//! terminal.

use super::*;

/// A process the test started; killed and reaped on drop.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real `docker-proxy` by hand, as a stale one left by a crashed engine: it
/// listens on `host_ip:host_port` and forwards to a target no container has. It reports
/// its start on file descriptor 3 and exits at once without it, hence the redirection.
pub fn stale_proxy(proto: &str, host_ip: &str, host_port: u16, target_ip: &str) -> ChildGuard {
    let binary = [
        "/usr/sbin/docker-proxy",
        "/usr/bin/docker-proxy",
        "/usr/libexec/docker/docker-proxy",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("docker-proxy binary (Debian's docker.io)");
    let script = format!(
        "exec {binary} -proto {proto} -host-ip {host_ip} -host-port {host_port} -container-ip {target_ip} -container-port 80 3>/dev/null"
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start docker-proxy");
    ChildGuard(child)
}

/// Starts `program` (a python3 or a copy of it) listening on a free loopback TCP port, and
/// returns it with the port. `extra` is passed after the script.
pub fn python_listener(
    program: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (ChildGuard, String) {
    let (child, line) = first_line(
        Command::new(program)
            .args([
                std::ffi::OsStr::new("-c"),
                std::ffi::OsStr::new("import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"),
            ])
            .args(extra),
    );
    (child, line.trim().to_owned())
}

/// Makes the program `cmd` starts die with the test's thread: a test binary killed
/// mid-run drops no guard, and a helper holding thousands of ports for minutes would
/// make the next run's tests fail to bind.
pub fn dies_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only prctl(2) runs, which is async-signal-safe and
    // touches no memory of the parent. The death signal fires when the spawning thread
    // ends, which is the test's, whose guards kill the helper by then anyway.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Starts `cmd` with its stdout piped and returns it (killed on drop, and with the test's
/// thread) with the first line it prints: the port or PID a helper program announces once
/// it is ready.
pub fn first_line(cmd: &mut Command) -> (ChildGuard, String) {
    let mut child = dies_with_test(cmd)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (ChildGuard(child), line)
}

/// Whether the tests run as root (who may plant files for other users, join groups).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The gid of the `docker` group, which may open the system engine's socket.
pub fn docker_gid() -> String {
    let out = Command::new("getent")
        .args(["group", "docker"])
        .output()
        .expect("getent");
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .map(str::to_owned)
        .expect("a docker group")
}

/// A command that runs `program` as user `nobody` (uid and gid 65534), in the
/// supplementary `groups` given (a numeric gid, or none), through util-linux's `setpriv`.
pub fn as_nobody(groups: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534"]);
    match groups {
        Some(gids) => cmd.arg(format!("--groups={gids}")),
        None => cmd.arg("--clear-groups"),
    };
    cmd.arg("--").arg(program);
    cmd
}

/// Runs the shell command `line` on a pseudo-terminal (util-linux's `script`), types
/// `answer` once it had time to ask, and returns what the terminal showed.
pub fn on_a_terminal(line: &str, answer: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    // Give it time to plan and ask, then answer.
    std::thread::sleep(Duration::from_secs(2));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
