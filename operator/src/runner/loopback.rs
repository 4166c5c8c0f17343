//! A stand-in object store on loopback for the runner's tests: it records every request the SDK
//! sends (its head and body) and answers each as the test says. Every connection gets its own
//! thread, so parallel requests work; the listener lives until the test process ends.

use std::io::{BufRead as _, Read as _, Write as _};
use std::sync::{Arc, Mutex};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    /// `PUT`, `POST`, ...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header lines, names lower-cased, values as sent, each ending in CRLF.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n == name).then(|| v.trim())
        })
    }
}

/// What the store answers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (Content-Length is added, except to a HEAD answer).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// `status` with this body and no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The same answer with one more header.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Every request received so far, in the order they arrived.
pub type Recorded = Arc<Mutex<Vec<Request>>>;

/// Starts a store answering with `answer`: its endpoint (`http://127.0.0.1:port`) and what it
/// records.
pub fn serve(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> (String, Recorded) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let recorded: Recorded = Arc::default();
    let answer = Arc::new(answer);
    let log = recorded.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (answer, log) = (answer.clone(), log.clone());
            std::thread::spawn(move || connection(stream, answer.as_ref(), &log));
        }
    });
    (endpoint, recorded)
}

/// Serves the requests of one connection until the client closes it.
fn connection(
    stream: std::net::TcpStream,
    answer: &(impl Fn(&Request) -> Answer + ?Sized),
    log: &Recorded,
) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(clone);
    let mut stream = stream;
    loop {
        let mut start = String::new();
        if reader.read_line(&mut start).unwrap_or(0) == 0 {
            return;
        }
        let mut words = start.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or_default().to_owned();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&match line.split_once(':') {
                Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
                None => line,
            });
        }
        let mut request = Request {
            method,
            target,
            head,
            body: Vec::new(),
        };
        let length = request
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_default();
        request.body = vec![0; length];
        if reader.read_exact(&mut request.body).is_err() {
            return;
        }
        let reply = answer(&request);
        let head_only = request.method == "HEAD";
        log.lock().expect("log").push(request);
        let mut out = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (name, value) in &reply.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        // A HEAD answer says its object's length itself and has no body.
        if !head_only {
            out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&reply.body);
        }
        if stream.write_all(&bytes).is_err() {
            return;
        }
    }
}

/// An S3 client of the runner's kind (path-style, plain bodies) for the store at `endpoint`.
pub async fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let args = super::StoreArgs {
        bucket: "insync".to_owned(),
        prefix: "b/".to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".to_owned(),
        path_style: true,
    };
    let keys = aws_sdk_s3::config::Credentials::new("id", "secret", None, None, "test");
    super::s3_client_with(&args, Some(keys)).await
}
