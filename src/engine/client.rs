//! The acting client (prune, free) and the connection every call starts from.

use std::future::Future;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{RemoveContainerOptions, StopContainerOptions};
use bollard::Docker;

use super::convert::convert;
use super::endpoint::{self, Endpoint, Transport};
use super::error::{call_error, describe, Error};
use super::tls::Tls;
use super::transport;
use crate::model::Container;

/// A connection for acting on containers (prune, free). Every call is bounded by the
/// engine's progress (see `Client::patient`).
pub struct Client {
    docker: Docker,
    timeout: Duration,
    /// When the engine last answered one of this client's calls.
    answered: std::cell::Cell<tokio::time::Instant>,
}

/// bollard's own per-request limit, for the acting client: a backstop only, the bound is
/// [`Client::patient`]'s.
const BACKSTOP: Duration = Duration::from_secs(24 * 3600);

impl Client {
    /// Connects lazily to `endpoint`; nothing is dialled until the first call.
    pub fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Client, Error> {
        Ok(Client {
            docker: connect(endpoint, timeout)?.with_timeout(BACKSTOP),
            timeout,
            answered: std::cell::Cell::new(tokio::time::Instant::now()),
        })
    }

    /// Runs one call; it fails once neither it nor any other call of this client has had
    /// an answer for `bound`. Dozens of actions are in flight at once and the engine works
    /// through some of them one at a time (Docker tears down each published port in
    /// turn: ~80 ms a container here), so the last one waits behind all the others. An
    /// engine that keeps answering is busy, not hung.
    async fn patient<T>(
        &self,
        bound: Duration,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, Error> {
        let started = tokio::time::Instant::now();
        let mut call = std::pin::pin!(call);
        loop {
            let deadline = self.answered.get().max(started) + bound;
            match tokio::time::timeout_at(deadline, &mut call).await {
                Ok(result) => {
                    self.answered.set(tokio::time::Instant::now());
                    return result.map_err(|e| call_error(e, bound));
                }
                Err(_) if self.answered.get().max(started) + bound <= deadline => {
                    return Err(Error::TimedOut(bound));
                }
                // Another call was answered meanwhile: wait on from that answer.
                Err(_) => {}
            }
        }
    }

    /// The container as it is now; `None` if it no longer exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<Container>, Error> {
        match self
            .patient(self.timeout, self.docker.inspect_container(id, None))
            .await
        {
            Ok(detail) => Ok(convert(&detail)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Unpauses (a paused container cannot be stopped).
    pub async fn unpause(&self, id: &str) -> Result<(), Error> {
        self.patient(self.timeout, self.docker.unpause_container(id))
            .await
    }

    /// Stops, giving the container `grace` to exit before the engine kills it.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), Error> {
        let options = StopContainerOptions {
            signal: None,
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
        };
        // The engine itself waits `grace` before killing, and answers nothing meanwhile.
        self.patient(
            self.timeout + grace,
            self.docker.stop_container(id, Some(options)),
        )
        .await
    }

    /// Removes; volumes are kept. With `force` a container that runs is killed first,
    /// without it the engine refuses one. `Ok(false)`: there was no such container.
    pub async fn remove(&self, id: &str, force: bool) -> Result<bool, Error> {
        let options = RemoveContainerOptions {
            v: false,
            force,
            link: false,
        };
        match self
            .patient(
                self.timeout,
                self.docker.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

pub(super) fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Docker, Error> {
    connect_to(endpoint, timeout).map(|(docker, _)| docker)
}

/// A client for `endpoint` on portreap's own transport, and that transport's target for
/// the calls bollard cannot make (see [`transport::ping_headers`], [`super::raw`]).
pub(super) fn connect_to(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(Docker, transport::Target), Error> {
    let target = target(endpoint)?;
    // bollard keeps its timeout in whole seconds and treats 0 as "fail at once"; the real
    // bound is the tokio timeout around each call, this is only a backstop.
    let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
    transport::docker(target.clone(), secs)
        .map(|docker| (docker, target))
        .map_err(|e| Error::Unreachable(describe(&e, timeout)))
}

/// Where `endpoint`'s connections go, its TLS material read.
fn target(endpoint: &Endpoint) -> Result<transport::Target, Error> {
    Ok(match endpoint.transport()? {
        Transport::Unix(path) => {
            if !path.exists() {
                return Err(Error::Unreachable(format!(
                    "socket {} does not exist (is the Docker engine installed and running?)",
                    path.display()
                )));
            }
            transport::Target::Unix(path)
        }
        Transport::Tcp(addr) => match endpoint::tls_files(endpoint, &endpoint::ProcessEnv)? {
            Some(files) => transport::Target::Tls(Tls::new(&addr, &files)?),
            None => transport::Target::Tcp(addr),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A call that the engine answers after `after`.
    async fn answered_after<T>(after: Duration, value: T) -> Result<T, BollardError> {
        tokio::time::sleep(after).await;
        Ok(value)
    }
    #[test]
    fn a_busy_engine_is_waited_for_a_silent_one_is_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            // Never dialled: the calls below are stand-ins.
            let endpoint = Endpoint {
                url: "tcp://127.0.0.1:9".into(),
                source: endpoint::Source::HostFlag,
            };
            let bound = Duration::from_secs(5);
            let client = Client::connect(&endpoint, bound).unwrap();
            // Other calls are answered every 2 s while one waits 15 s for its answer.
            let others = async {
                for _ in 0..10 {
                    let tick = answered_after(Duration::from_secs(2), ());
                    client.patient(bound, tick).await.unwrap();
                }
            };
            let slow = client.patient(bound, answered_after(Duration::from_secs(15), 7));
            let ((), slow) = futures_util::future::join(others, slow).await;
            assert_eq!(slow.unwrap(), 7);

            // Nothing else answers: the same wait fails after the bound.
            let start = tokio::time::Instant::now();
            let silent = client
                .patient(bound, answered_after(Duration::from_secs(15), 7))
                .await;
            let err = silent.unwrap_err();
            assert_eq!(err, Error::TimedOut(bound));
            assert!(err.to_string().contains("did not answer within 5.0s"));
            assert_eq!(start.elapsed(), bound);
        });
    }
}
