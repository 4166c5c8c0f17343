//! A throwaway `moto_server` (Route53 and friends) on 127.0.0.1 (or another address of this
//! machine, for pods to reach), killed on drop.
//!
//! The binary is `moto_server` from `pip install 'moto[server]'` (or `$MOTO_SERVER`). A missing
//! binary fails the test with instructions: a Route53 test that silently skips proves nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    child: Child,
    host: String,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port on 127.0.0.1");
    l.local_addr()
        .expect("local address of the ephemeral listener")
        .port()
}

fn moto_binary() -> String {
    std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned())
}

/// One `GET /` over plain TCP; true if anything that looks like HTTP answers.
fn answers(host: &str, port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((host, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && buf.starts_with(b"HTTP/"))
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it answers (≤ 60 s).
    pub fn start() -> Moto {
        Self::start_on("127.0.0.1")
    }

    /// Starts `moto_server -H <host> -p <free port>`: `host` is an address of this machine
    /// (e.g. the real node's, so the operator's pod can reach it).
    pub fn start_on(host: &str) -> Moto {
        let bin = moto_binary();
        let log = std::env::temp_dir().join(format!(
            "insync-moto-{}-{}.log",
            std::process::id(),
            free_port()
        ));
        let mut last_err = None;
        // The port is free when probed, but another process may grab it first: try a few.
        for _ in 0..3 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("creating the moto log file");
            let log_err = log_file.try_clone().expect("cloning the moto log handle");
            let child = Command::new(&bin)
                .args(["-H", host, "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log_file))
                .stderr(Stdio::from(log_err))
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "`{bin}` not found: these Route53 tests need moto's server mode. \
                     Install it with `pip install 'moto[server]==5.2.1'` (or point $MOTO_SERVER \
                     at the binary). Not skipping: a skipped DNS test would prove nothing."
                ),
                Err(e) => panic!("starting `{bin}`: {e}"),
            };
            let mut moto = Moto {
                child,
                host: host.to_owned(),
                port,
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if answers(host, port) {
                    return moto;
                }
                if let Ok(Some(status)) = moto.child.try_wait() {
                    last_err = Some(format!(
                        "moto_server exited with {status}\n--- moto log ---\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                    break;
                }
                if Instant::now() > deadline {
                    last_err = Some(format!(
                        "moto_server did not answer within 60 s\n--- moto log ---\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(moto);
        }
        panic!(
            "could not start moto_server after 3 tries: {}",
            last_err.unwrap_or_default()
        );
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://<host>:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
