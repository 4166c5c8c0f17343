//! `insync-operator run` as a child process, for the e2e tests and the benchmark: started
//! against a kubeconfig with its own metrics port and log file, waited for on `/readyz`, read
//! through `/metrics` and `/proc/<pid>`, restarted, stopped with SIGTERM, killed on drop.
//!
//! ```no_run
//! # async fn example() -> Result<(), insync_e2e::operator_process::Error> {
//! use insync_e2e::operator_process::OperatorCommand;
//! let op = OperatorCommand::new("target/debug/insync-operator", "/tmp/op.log")
//!     .kubeconfig("/tmp/kubeconfig")
//!     .args(["--namespace", "demo"])
//!     .start()
//!     .await?;
//! let applied = op.metric("insync_operator_objects_applied_total").await?;
//! let memory = op.memory()?;
//! let op = op.restart().await?;
//! op.terminate().await?;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::prom;

/// Environment variables `insync-operator run` reads as flags. They are removed from the
/// child's environment (unless set with [`OperatorCommand::env`]), so a variable left in the
/// caller's shell cannot change what a test or the benchmark runs.
const OPERATOR_ENV: [&str; 6] = [
    "WATCH_NAMESPACE",
    "LEADER_ELECT",
    "POD_NAMESPACE",
    "LOG_FORMAT",
    "DNS_OWNER_ID",
    "AWS_ENDPOINT_URL_ROUTE_53",
];

/// What can go wrong with the operator process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the operator log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free local port for the metrics endpoint: {0}")]
    Port(#[source] std::io::Error),
    #[error("the operator exited ({status}) before /readyz answered 200\n{log_tail}")]
    ExitedEarly {
        status: ExitStatus,
        log_tail: String,
    },
    #[error("the operator's /readyz did not answer 200 within {timeout:?}\n{log_tail}")]
    NotReady { timeout: Duration, log_tail: String },
    #[error("GET {path} on the operator's metrics port: {source}")]
    Http {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the operator's {path} answered {code}")]
    Status { path: String, code: u16 },
    #[error("reading {path}: {source}")]
    Proc {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no field {field}")]
    ProcField { path: String, field: &'static str },
    #[error("sending {signal} to the operator: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the operator did not stop within {0:?} of SIGTERM")]
    StopTimeout(Duration),
    #[error("waiting for the operator to exit: {0}")]
    Wait(#[source] std::io::Error),
}

/// How to run the operator; [`OperatorCommand::start`] runs it.
#[derive(Debug, Clone)]
pub struct OperatorCommand {
    binary: PathBuf,
    log: PathBuf,
    kubeconfig: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    rust_log: String,
    ready_timeout: Duration,
    stop_timeout: Duration,
}

impl OperatorCommand {
    /// `binary run --metrics-addr 127.0.0.1:<free port>`, stdout and stderr into `log`
    /// (truncated at the first start, appended to at each restart).
    pub fn new(binary: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            log: log.into(),
            kubeconfig: None,
            args: Vec::new(),
            env: Vec::new(),
            // debug on the operator logs why an object was rewritten
            rust_log: "info,insync_operator=debug,kube=warn".into(),
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(30),
        }
    }

    /// The cluster to run against (`KUBECONFIG` of the child); without it the child inherits
    /// the caller's environment. An explicit [`Self::env`] `KUBECONFIG` wins.
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// More `run` flags.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// One environment variable of the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `RUST_LOG` of the child (default `info,insync_operator=debug,kube=warn`).
    pub fn rust_log(mut self, filter: impl Into<String>) -> Self {
        self.rust_log = filter.into();
        self
    }

    /// How long `/readyz` may take (default 60 s; a re-list of thousands of objects on a busy
    /// machine needs more).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// How long the process may take to exit after SIGTERM (default 30 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Starts the process and waits until `/readyz` answers 200 (every cache has listed).
    pub async fn start(self) -> Result<OperatorProcess, Error> {
        let timeout = self.ready_timeout;
        let mut op = self.spawn(false).await?;
        op.wait_ready(timeout).await?;
        Ok(op)
    }

    async fn spawn(self, append: bool) -> Result<OperatorProcess, Error> {
        let metrics_port = free_port()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&self.log)
            .map_err(|source| Error::Log {
                path: self.log.clone(),
                source,
            })?;
        let log_error = |source| Error::Log {
            path: self.log.clone(),
            source,
        };
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("run")
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(&self.args);
        for key in OPERATOR_ENV {
            cmd.env_remove(key);
        }
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        cmd.env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().map_err(log_error)?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        // A child that has not been waited for always has a pid.
        let pid = child.id().unwrap_or_default();
        Ok(OperatorProcess {
            command: self,
            child,
            pid,
            metrics_port,
            started,
            ready: None,
        })
    }
}

/// Resident memory of the process, from `/proc/<pid>/status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident set since start or since [`OperatorProcess::reset_peak`], KiB.
    pub peak_kib: u64,
}

/// A running `insync-operator run`; killed (SIGKILL) when dropped.
pub struct OperatorProcess {
    command: OperatorCommand,
    child: tokio::process::Child,
    pid: u32,
    metrics_port: u16,
    started: Instant,
    /// Spawn to the first 200 from `/readyz`, and the memory then.
    ready: Option<(Duration, Memory)>,
}

impl OperatorProcess {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// The log file (stdout and stderr; restarts append to it).
    pub fn log(&self) -> &Path {
        &self.command.log
    }

    /// Time from spawn to the first 200 from `/readyz` (every cache listed), once seen by
    /// [`Self::wait_ready`] or [`Self::poll_ready`].
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready.map(|(after, _)| after)
    }

    /// Memory when `/readyz` was first seen answering 200: its `peak_kib` is the peak of the
    /// initial lists (sampled within 100 ms of readiness by [`Self::wait_ready`]).
    pub fn ready_memory(&self) -> Option<Memory> {
        self.ready.map(|(_, memory)| memory)
    }

    /// Whether `/readyz` answers 200 now; the first time it does, records the time since spawn
    /// and the memory (see [`Self::ready_after`], [`Self::ready_memory`]).
    pub async fn poll_ready(&mut self) -> Result<bool, Error> {
        if self.ready.is_some() {
            return Ok(true);
        }
        if !matches!(self.get("/readyz").await, Ok((200, _))) {
            return Ok(false);
        }
        self.ready = Some((self.started.elapsed(), self.memory()?));
        Ok(true)
    }

    /// Waits until `/readyz` answers 200, at most `timeout` from spawn; fails at once when the
    /// process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(Error::Wait)? {
                return Err(Error::ExitedEarly {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if self.poll_ready().await? {
                return Ok(());
            }
            if self.started.elapsed() >= timeout {
                return Err(Error::NotReady {
                    timeout,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET on the metrics port: (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String), Error> {
        let http = |source| Error::Http {
            path: path.to_owned(),
            source,
        };
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
            s.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
                .await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            Ok(out)
        };
        let out = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| http(std::io::ErrorKind::TimedOut.into()))?
            .map_err(http)?;
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// Every sample of `/metrics`.
    pub async fn metrics(&self) -> Result<Vec<prom::Sample>, Error> {
        let (code, body) = self.get("/metrics").await?;
        if code != 200 {
            return Err(Error::Status {
                path: "/metrics".into(),
                code,
            });
        }
        Ok(prom::parse(&body))
    }

    /// A counter or gauge from `/metrics`, summed over its label sets (0 when absent).
    pub async fn metric(&self, name: &str) -> Result<f64, Error> {
        Ok(prom::sum(&self.metrics().await?, name))
    }

    /// VmRSS and VmHWM now.
    pub fn memory(&self) -> Result<Memory, Error> {
        let path = format!("/proc/{}/status", self.pid);
        let status = read_proc(&path)?;
        let kib = |field: &'static str| -> Result<u64, Error> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| Error::ProcField {
                    path: path.clone(),
                    field,
                })
        };
        Ok(Memory {
            rss_kib: kib("VmRSS:")?,
            peak_kib: kib("VmHWM:")?,
        })
    }

    /// Resets VmHWM to the current RSS (`5` into `/proc/<pid>/clear_refs`), so the next
    /// [`Self::memory`] gives the peak of one phase rather than of the whole process.
    pub fn reset_peak(&self) -> Result<(), Error> {
        let path = format!("/proc/{}/clear_refs", self.pid);
        std::fs::write(&path, "5").map_err(|source| Error::Proc { path, source })
    }

    /// User + system CPU seconds of the process so far.
    pub fn cpu_secs(&self) -> Result<f64, Error> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = read_proc(&path)?;
        let field = |field| Error::ProcField {
            path: path.clone(),
            field,
        };
        // The command name (field 2) may hold spaces: count the fields after its ')'.
        let rest = stat.rsplit_once(')').ok_or_else(|| field("comm"))?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        let ticks = |i: usize, name| -> Result<f64, Error> {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| field(name))
        };
        Ok((ticks(11, "utime")? + ticks(12, "stime")?) / ticks_per_sec())
    }

    /// The last 40 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "operator log ({}):\n{}",
            self.log().display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Stops the process (SIGTERM) and starts it again with the same command, new metrics
    /// port, log appended; waits for `/readyz` again. The counters of `/metrics` start from 0.
    pub async fn restart(self) -> Result<Self, Error> {
        let timeout = self.command.ready_timeout;
        let mut op = self.respawn().await?;
        op.wait_ready(timeout).await?;
        Ok(op)
    }

    /// Like [`Self::restart`] without waiting for `/readyz`: for a caller that measures what
    /// happens before (or instead of) readiness; see [`Self::poll_ready`].
    pub async fn respawn(self) -> Result<Self, Error> {
        let command = self.command.clone();
        self.terminate().await?;
        command.spawn(true).await
    }

    /// SIGKILL: the harshest stop; waits for the exit.
    pub async fn kill(mut self) -> Result<(), Error> {
        self.child.kill().await.map_err(|source| Error::Signal {
            signal: "SIGKILL",
            source,
        })
    }

    /// SIGTERM, then waits for the exit (at most the stop timeout; the process is killed when
    /// it does not stop in time, and that is an error).
    pub async fn terminate(mut self) -> Result<ExitStatus, Error> {
        let signal = |source| Error::Signal {
            signal: "SIGTERM",
            source,
        };
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdin(Stdio::null())
            .status()
            .await
            .map_err(signal)?;
        if !status.success() {
            return Err(signal(std::io::Error::other(format!(
                "kill -TERM: {status}"
            ))));
        }
        let timeout = self.command.stop_timeout;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(exit) => exit.map_err(Error::Wait),
            Err(_) => Err(Error::StopTimeout(timeout)), // dropping self kills it
        }
    }
}

fn read_proc(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Proc {
        path: path.to_owned(),
        source,
    })
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::Port)?;
    Ok(listener.local_addr().map_err(Error::Port)?.port())
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 when unknown).
fn ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the operator: a shell that serves nothing is enough to test the process
    /// side (exit before readiness, the log, the error naming it).
    #[tokio::test]
    async fn an_operator_that_exits_early_is_reported_with_its_log() {
        let dir = std::env::temp_dir().join(format!("insync-op-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fake-operator");
        std::fs::write(&fake, "#!/bin/sh\necho \"fake operator got: $*\"\nexit 3\n").unwrap();
        std::process::Command::new("chmod")
            .args(["+x", &fake.display().to_string()])
            .status()
            .unwrap();
        let err = OperatorCommand::new(&fake, dir.join("op.log"))
            .args(["--namespace", "x"])
            .start()
            .await
            .err()
            .expect("the fake operator exits before /readyz");
        let text = err.to_string();
        assert!(matches!(err, Error::ExitedEarly { .. }), "{text}");
        assert!(
            text.contains("fake operator got: run --metrics-addr 127.0.0.1:"),
            "{text}"
        );
        assert!(text.contains("--namespace x"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A stand-in operator in Python that serves `/readyz` and `/metrics` and exits on
    /// SIGTERM: the whole life cycle without a cluster.
    const FAKE_OPERATOR: &str = r##"#!/usr/bin/env python3
import http.server, signal, sys
addr = sys.argv[sys.argv.index("--metrics-addr") + 1]
host, port = addr.rsplit(":", 1)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/readyz": b"ready\n", "/metrics": b"# HELP x\ninsync_operator_reconciles_total{result=\"ok\"} 2\ninsync_operator_reconciles_total{result=\"error\"} 1\n"}.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body or b"")
    def log_message(self, *args):
        pass
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("fake operator listening", flush=True)
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
"##;

    #[tokio::test]
    async fn starts_reads_restarts_and_stops_a_process() {
        let dir = std::env::temp_dir().join(format!("insync-op-life-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fake-operator");
        std::fs::write(&fake, FAKE_OPERATOR).unwrap();
        std::process::Command::new("chmod")
            .args(["+x", &fake.display().to_string()])
            .status()
            .unwrap();
        let op = OperatorCommand::new(&fake, dir.join("op.log"))
            .start()
            .await
            .unwrap();
        assert_eq!(
            op.metric("insync_operator_reconciles_total").await.unwrap(),
            3.0
        );
        assert_eq!(op.get("/nothing").await.unwrap().0, 404);
        let memory = op.memory().unwrap();
        assert!(
            memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib,
            "{memory:?}"
        );
        assert!(op.ready_memory().is_some_and(|m| m.peak_kib > 0));
        assert!(op.ready_after().is_some());
        op.reset_peak().unwrap();
        assert!(op.memory().unwrap().peak_kib <= memory.peak_kib);
        op.cpu_secs().unwrap();
        let (pid, port) = (op.pid(), op.metrics_port());

        let op = op.restart().await.unwrap();
        assert_ne!(op.pid(), pid);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the first process is gone"
        );
        assert_ne!(op.metrics_port(), port);
        let mut op = op.respawn().await.unwrap();
        assert_eq!(op.ready_after(), None, "respawn does not wait for /readyz");
        op.wait_ready(Duration::from_secs(30)).await.unwrap();
        assert!(op.ready_after().is_some());
        let log = std::fs::read_to_string(op.log()).unwrap();
        assert_eq!(log.matches("fake operator listening").count(), 3, "{log}");
        let exit = op.terminate().await.unwrap();
        assert!(exit.success(), "{exit}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
