//! The generated `haproxy.cfg` run by the real HAProxy: storage nodes are found through the SRV
//! records of their headless Service, and a node added to DNS gets traffic while the same
//! HAProxy process keeps running (scaling restarts no HAProxy). And the file starts under a
//! container runtime's file descriptor limit, whatever it is: HAProxy sizes maxconn from it.
//!
//! A small DNS server on loopback plays the cluster DNS (answering like CoreDNS does for a
//! headless Service: SRV records with the pods' A records as additional records), and TCP
//! listeners on loopback play the nodes. HAProxy's runtime API (`show servers state`) says which
//! server slots hold which node and whether its health check passes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insync_operator::api::{InSyncCloud, InSyncCloudSpec};
use insync_operator::render::haproxy_cfg;

const SRV_NAME: &str = "_storage._tcp.rt-node.runtime.svc.cluster.local";

/// Storage nodes the DNS server publishes: (host name, port).
type Nodes = Arc<Mutex<Vec<(String, u16)>>>;

fn node_host(index: usize) -> String {
    format!("rt-node-{index}.rt-node.runtime.svc.cluster.local")
}

/// A storage node: answers every connection with its name.
fn start_node(index: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a node");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.write_all(format!("node-{index}\n").as_bytes());
        }
    });
    port
}

/// Encodes a DNS name as labels.
fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(u8::try_from(label.len()).expect("short label"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The question of a query: (lower-case name, type, end offset of the question).
fn parse_question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

struct Record {
    name: String,
    rtype: u16,
    data: Vec<u8>,
}

impl Record {
    fn write(&self, out: &mut Vec<u8>) {
        encode_name(&self.name, out);
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&5u32.to_be_bytes()); // TTL
        out.extend_from_slice(&u16::try_from(self.data.len()).expect("short").to_be_bytes());
        out.extend_from_slice(&self.data);
    }
}

const A: u16 = 1;
const SRV: u16 = 33;

fn a_record(name: &str) -> Record {
    Record {
        name: name.to_owned(),
        rtype: A,
        data: Ipv4Addr::LOCALHOST.octets().to_vec(),
    }
}

/// The answer and additional records for a question, like CoreDNS for a headless Service.
fn answer(nodes: &[(String, u16)], name: &str, qtype: u16) -> Option<(Vec<Record>, Vec<Record>)> {
    if name == SRV_NAME {
        if qtype != SRV {
            return Some((Vec::new(), Vec::new()));
        }
        let srv = nodes
            .iter()
            .map(|(host, port)| {
                let mut data = Vec::new();
                data.extend_from_slice(&0u16.to_be_bytes()); // priority
                data.extend_from_slice(&100u16.to_be_bytes()); // weight
                data.extend_from_slice(&port.to_be_bytes());
                encode_name(host, &mut data);
                Record {
                    name: SRV_NAME.to_owned(),
                    rtype: SRV,
                    data,
                }
            })
            .collect();
        let additional = nodes.iter().map(|(host, _)| a_record(host)).collect();
        return Some((srv, additional));
    }
    let known = nodes.iter().any(|(host, _)| host == name);
    match (known, qtype) {
        (true, A) => Some((vec![a_record(name)], Vec::new())),
        (true, _) => Some((Vec::new(), Vec::new())),
        (false, _) => None,
    }
}

/// A DNS server on loopback answering from `nodes` (NXDOMAIN for other names).
fn start_dns(nodes: Nodes) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
    let port = socket.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            let query = &buf[..len];
            let Some((name, qtype, question_end)) = parse_question(query) else {
                continue;
            };
            let found = answer(&nodes.lock().expect("nodes"), &name, qtype);
            let (answers, additional) = found
                .as_ref()
                .map_or((&[][..], &[][..]), |(a, b)| (a.as_slice(), b.as_slice()));
            let mut out = Vec::with_capacity(512);
            out.extend_from_slice(&query[..2]); // id
            let rcode: u8 = if found.is_some() { 0 } else { 3 };
            out.extend_from_slice(&[0x85, 0x80 | rcode]); // response, authoritative, RD, RA
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&u16::try_from(answers.len()).expect("few").to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            out.extend_from_slice(&u16::try_from(additional.len()).expect("few").to_be_bytes());
            out.extend_from_slice(&query[12..question_end]);
            for record in answers.iter().chain(additional) {
                record.write(&mut out);
            }
            let _ = socket.send_to(&out, peer);
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// The rendered file as a test runs it: only what ties it to a pod changes: the DNS server,
/// the listen addresses (ports of this machine may be taken) and a runtime API socket.
fn on_loopback(cfg: &str, admin: &std::path::Path, dns: u16) -> String {
    cfg.replacen(
        "global\n",
        &format!("global\n    stats socket {} level admin\n", admin.display()),
        1,
    )
    .replace(
        "parse-resolv-conf",
        &format!("nameserver test 127.0.0.1:{dns}"),
    )
    .replace("bind :6061", &format!("bind 127.0.0.1:{}", free_port()))
    .replace("bind :8443", &format!("bind 127.0.0.1:{}", free_port()))
    .replace("bind :8404", &format!("bind 127.0.0.1:{}", free_port()))
}

/// Starts `haproxy -db` on `cfg` (written into `dir`), with its file descriptor limit (soft and
/// hard) lowered to `nofile` when given, as a container runtime would set it.
fn start_haproxy(dir: &std::path::Path, cfg: &str, nofile: Option<u64>) -> Haproxy {
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("config is writable");
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("{limit}exec haproxy -db -f \"$0\""))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy runs (apt-get install -y haproxy)");
    Haproxy(child)
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ports of the nodes HAProxy's `nodes` backend holds in running state, from its runtime API.
fn running_nodes(socket: &std::path::Path) -> Vec<u16> {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return Vec::new();
    };
    let mut text = String::new();
    if stream.write_all(b"show servers state nodes\n").is_err()
        || stream.read_to_string(&mut text).is_err()
    {
        return Vec::new();
    }
    let mut lines = text.lines().skip_while(|l| !l.starts_with("# be_id"));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(' ').collect();
    let column = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(state), Some(port)) = (column("srv_op_state"), column("srv_port")) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = lines
        .map(|l| l.split(' ').collect::<Vec<_>>())
        // srv_op_state 2: running (resolved and its health check passes)
        .filter(|fields| fields.get(state) == Some(&"2"))
        .filter_map(|fields| fields.get(port)?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

/// Polls until `running_nodes` is `want`; returns what it saw last.
fn wait_for_nodes(socket: &std::path::Path, want: &[u16], timeout: Duration) -> Vec<u16> {
    let started = Instant::now();
    loop {
        let running = running_nodes(socket);
        if running == want || started.elapsed() > timeout {
            return running;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn nodes_come_from_srv_records_and_a_new_node_joins_without_a_restart() {
    let nodes: Nodes = Arc::new(Mutex::new(Vec::new()));
    let mut ports = Vec::new();
    for index in 0..2 {
        let port = start_node(index);
        ports.push(port);
        nodes.lock().expect("nodes").push((node_host(index), port));
    }
    let dns = start_dns(nodes.clone());

    let mut cloud = InSyncCloud::new("rt", InSyncCloudSpec::with_version("5.9.1-r4178"));
    cloud.metadata.namespace = Some("runtime".to_owned());
    cloud.spec.nodes.replicas = 2;
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin = dir.path().join("admin.sock");
    let cfg = on_loopback(&haproxy_cfg(&cloud), &admin, dns).replace(
        "check inter 5s fall 3 rise 2",
        "check inter 500ms fall 3 rise 1",
    );
    assert!(
        cfg.contains(&format!("server-template node 100 {SRV_NAME}")),
        "{cfg}"
    );
    let haproxy = start_haproxy(dir.path(), &cfg, None);
    let pid = haproxy.0.id();

    ports.sort_unstable();
    let running = wait_for_nodes(&admin, &ports, Duration::from_secs(20));
    assert_eq!(
        running, ports,
        "both nodes from the SRV records, health checked"
    );

    // Scale up: the new node is only published in DNS; the same HAProxy process takes it.
    let port = start_node(2);
    nodes.lock().expect("nodes").push((node_host(2), port));
    ports.push(port);
    ports.sort_unstable();
    let running = wait_for_nodes(&admin, &ports, Duration::from_secs(30));
    assert_eq!(running, ports, "the new node joins");
    assert_eq!(haproxy.0.id(), pid);
}

/// `show info` of HAProxy's runtime API as `(field, value)` pairs, once the socket answers.
fn show_info(socket: &std::path::Path, timeout: Duration) -> Vec<(String, String)> {
    let started = Instant::now();
    loop {
        let mut text = String::new();
        if let Ok(mut stream) = UnixStream::connect(socket)
            && stream.write_all(b"show info\n").is_ok()
            && stream.read_to_string(&mut text).is_ok()
            && !text.is_empty()
        {
            return text
                .lines()
                .filter_map(|line| line.split_once(": "))
                .map(|(field, value)| (field.to_owned(), value.to_owned()))
                .collect();
        }
        assert!(
            started.elapsed() < timeout,
            "HAProxy's runtime API did not answer: it did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn info_number(info: &[(String, String)], field: &str) -> u64 {
    info.iter()
        .find(|(name, _)| name == field)
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {info:?}"))
}

/// The hard file descriptor limit of this test process (what a child may keep at most).
fn hard_nofile() -> Option<u64> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Hn")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The file sets no maxconn, so HAProxy starts under whatever descriptor limit the container
/// runtime gives the pod (containerd's `ctr run` gives 1024) and sizes maxconn from it: about
/// half the limit, as a proxied connection holds two descriptors. `fd-hard-limit` bounds it
/// where the limit is huge.
#[test]
fn maxconn_follows_the_descriptor_limit_the_pod_gets() {
    let dns = start_dns(Arc::new(Mutex::new(Vec::new())));
    let mut cloud = InSyncCloud::new("rt", InSyncCloudSpec::with_version("5.9.1-r4178"));
    cloud.metadata.namespace = Some("runtime".to_owned());
    let rendered = haproxy_cfg(&cloud);
    assert!(
        rendered
            .lines()
            .all(|line| !line.trim().starts_with("maxconn")),
        "{rendered}"
    );
    let bound: u64 = rendered
        .lines()
        .find_map(|line| line.trim().strip_prefix("fd-hard-limit "))
        .and_then(|n| n.parse().ok())
        .expect("fd-hard-limit");

    let hard = hard_nofile();
    let mut limits = vec![1024, 4096];
    limits.extend(hard.filter(|&h| h > 4096 && h < bound));
    for nofile in limits {
        let dir = tempfile::tempdir().expect("temporary directory");
        let admin = dir.path().join("admin.sock");
        let _haproxy = start_haproxy(
            dir.path(),
            &on_loopback(&rendered, &admin, dns),
            Some(nofile),
        );
        let info = show_info(&admin, Duration::from_secs(10));
        let (maxconn, ulimit) = (
            info_number(&info, "Maxconn"),
            info_number(&info, "Ulimit-n"),
        );
        assert!(ulimit <= nofile, "nofile {nofile}: {info:?}");
        assert!(
            2 * maxconn < nofile && 2 * maxconn + 1000 >= nofile,
            "nofile {nofile}: maxconn {maxconn} should be about half of it"
        );
    }

    // The bound applies where the runtime's limit is higher (shown with a smaller bound, as a
    // test process may not raise its own limit past the one it has).
    let Some(hard) = hard.filter(|&h| h >= 8192) else {
        eprintln!("hard descriptor limit below 8192: fd-hard-limit not checked");
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin = dir.path().join("admin.sock");
    let small = on_loopback(&rendered, &admin, dns)
        .replace(&format!("fd-hard-limit {bound}"), "fd-hard-limit 4000");
    let _haproxy = start_haproxy(dir.path(), &small, Some(hard));
    let info = show_info(&admin, Duration::from_secs(10));
    assert!(
        info_number(&info, "Ulimit-n") <= 4000 && info_number(&info, "Maxconn") < 2000,
        "fd-hard-limit 4000 under a hard limit of {hard}: {info:?}"
    );
}
