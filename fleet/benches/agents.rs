//! Many simulated agents against one fleet server (`flotilla serve`, a separate process):
//! light clients with real TLS and the real protocol, many per process, each heartbeating
//! and sending status deltas. Prints the fleet's RSS and CPU, the p50/p99 delta-to-API
//! latency (from the agent sending a delta to the API's event stream carrying it), and the
//! time for every agent to reconnect after the fleet is killed and restarted.
//!
//! `cargo bench -p fleet --bench agents -- --agents 1000 [--steady-secs 60]`
//!
//! The issue's anchors (OCM: "thousand-ish clusters" per hub; KubeFleet: 8-12 cores for 1,000
//! clusters) are documented figures of systems that need a Kubernetes hub to run; they are
//! printed for orientation, not measured here.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet::client::{ApiClient, Credential};
use fleet::home::FleetHome;
use fleet::registry::{CertificateRecord, Registration, RegistryContents};
use futures::{SinkExt, StreamExt};
use proto::dial::{self, WsMessage};
use proto::pki::Identity;
use proto::{
    AgentMessage, Delta, FleetMessage, Heartbeat, Hello, ObjectRef, ObjectStatus, Readiness,
    Snapshot,
};

struct Options {
    agents: usize,
    heartbeat: Duration,
    delta: Duration,
    steady: Duration,
}

fn options() -> Options {
    let mut o = Options {
        agents: 1000,
        heartbeat: Duration::from_secs(10),
        delta: Duration::from_secs(30),
        steady: Duration::from_secs(60),
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--agents", Some(v)) => o.agents = v as usize,
            ("--heartbeat-secs", Some(v)) => o.heartbeat = Duration::from_secs(v),
            ("--delta-secs", Some(v)) => o.delta = Duration::from_secs(v),
            ("--steady-secs", Some(v)) => o.steady = Duration::from_secs(v),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19443)
}

fn start_fleet(
    dir: &std::path::Path,
    agent_port: u16,
    api_port: u16,
    heartbeat: Duration,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "serve",
            "--workers",
            "2",
            "--heartbeat-seconds",
            &heartbeat.as_secs().to_string(),
        ])
        .arg("--dir")
        .arg(dir)
        .args([
            "--agent-addr",
            &format!("127.0.0.1:{agent_port}"),
            "--api-addr",
            &format!("127.0.0.1:{api_port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flotilla serve")
}

/// (RSS bytes, CPU seconds) of a process, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the comm.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (rss_kb * 1024, ticks as f64 / 100.0)
}

fn objects(agent: usize) -> Vec<ObjectStatus> {
    ["infrastructure", "apps", "monitoring", "ingress", "tenants"]
        .iter()
        .map(|name| ObjectStatus {
            object: ObjectRef {
                kind: "Kustomization".into(),
                namespace: "flux-system".into(),
                name: name.to_string(),
            },
            ready: Readiness::True,
            revision: Some(format!("main@sha1:{agent:040}")),
            suspended: false,
            message: "Applied revision".into(),
        })
        .collect()
}

#[derive(Default)]
struct Shared {
    connected: AtomicUsize,
    sent: Mutex<HashMap<String, Instant>>,
}

/// One light agent: connect, hello + snapshot, heartbeats and deltas; reconnect on loss.
async fn agent(
    index: usize,
    name: String,
    url: String,
    tls: Arc<rustls::ClientConfig>,
    o: Arc<Options>,
    shared: Arc<Shared>,
) {
    let mut seq = 0u64;
    let mut backoff = Duration::from_millis(500);
    loop {
        let Ok(mut socket) = dial::dial(&url, tls.clone()).await else {
            let jitter = (index as u64 * 7919 % 1000) as f64 / 1000.0;
            tokio::time::sleep(backoff.mul_f64(0.5 + 0.5 * jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        };
        let hello = AgentMessage::Hello(Hello {
            protocol_version: proto::PROTOCOL_VERSION,
            agent_version: "bench".into(),
            capabilities: vec![],
        });
        let snapshot = AgentMessage::Snapshot(Snapshot {
            cluster: name.clone(),
            sent_at_ms: proto::message::now_ms(),
            objects: objects(index),
        });
        let mut ok = true;
        for m in [hello, snapshot] {
            ok &= socket
                .send(WsMessage::text(
                    proto::frame::encode(&m).unwrap_or_default(),
                ))
                .await
                .is_ok();
        }
        if !ok {
            continue;
        }
        let mut welcomed = false;
        // Spread the deltas over the interval so they do not arrive in bursts.
        let phase = o.delta.mul_f64((index % 1000) as f64 / 1000.0);
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + o.heartbeat, o.heartbeat);
        let mut delta = tokio::time::interval_at(
            tokio::time::Instant::now() + phase + Duration::from_millis(1),
            o.delta,
        );
        loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        if let Ok(FleetMessage::Welcome(_)) = proto::frame::decode_fleet(text.as_str()) {
                            welcomed = true;
                            backoff = Duration::from_millis(500);
                            shared.connected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                _ = heartbeat.tick() => {
                    let m = AgentMessage::Heartbeat(Heartbeat { sent_at_ms: proto::message::now_ms() });
                    if socket.send(WsMessage::text(proto::frame::encode(&m).unwrap_or_default())).await.is_err() { break; }
                }
                _ = delta.tick() => {
                    seq += 1;
                    let revision = format!("main@sha1:{index:020}{seq:020}");
                    let mut status = objects(index).remove(1);
                    status.revision = Some(revision.clone());
                    let m = AgentMessage::Delta(Delta { cluster: name.clone(), sent_at_ms: proto::message::now_ms(), changed: vec![status], removed: vec![] });
                    shared.sent.lock().unwrap_or_else(|p| p.into_inner()).insert(revision, Instant::now());
                    if socket.send(WsMessage::text(proto::frame::encode(&m).unwrap_or_default())).await.is_err() { break; }
                }
            }
        }
        if welcomed {
            shared.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

async fn wait_connected(shared: &Shared, n: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while shared.connected.load(Ordering::Relaxed) < n {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(start.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let o = Arc::new(options());
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(o));
}

async fn run(o: Arc<Options>) {
    let dir = std::env::temp_dir().join(format!("flotilla-bench-{}", std::process::id()));
    let home = FleetHome::new(&dir);
    home.init("bench", &[], true).expect("fleet init");
    let ca = home.ca().expect("CA");
    let ca_pem = ca.cert_pem().to_string();
    let issued_at = Instant::now();
    let mut contents = RegistryContents::default();
    let mut configs = Vec::with_capacity(o.agents);
    for i in 0..o.agents {
        let name = format!("cluster-{i:05}");
        let cert = ca
            .issue_client(
                &Identity::Cluster(name.clone()),
                Duration::from_secs(86_400),
            )
            .expect("cert");
        let now = chrono::Utc::now();
        contents.clusters.insert(
            name.clone(),
            Registration {
                name: name.clone(),
                labels: BTreeMap::new(),
                certificates: vec![CertificateRecord {
                    fingerprint: cert.fingerprint.clone(),
                    issued_at: now,
                    not_after: cert.not_after,
                }],
                registered_at: now,
            },
        );
        let tls =
            proto::tls::client_config(&ca_pem, Some((&cert.cert_pem, &cert.key_pem))).expect("tls");
        configs.push((name, Arc::new(tls)));
    }
    let registry = serde_json::to_string(&contents).expect("registry");
    fleet::home::write_file(&home.path("clusters.json"), &registry, 0o644).expect("write registry");
    eprintln!(
        "issued {} certificates in {:.1}s",
        o.agents,
        issued_at.elapsed().as_secs_f64()
    );

    let (agent_port, api_port) = (free_port(), free_port());
    let mut fleet = start_fleet(&dir, agent_port, api_port, o.heartbeat);
    let api = ApiClient::new(
        &format!("https://localhost:{api_port}"),
        &ca_pem,
        Credential::Certificate {
            cert_pem: home.read_public("admin.crt").expect("admin"),
            key_pem: home.read_secret("admin.key").expect("key"),
        },
    )
    .expect("client");
    while api.get_text("/healthz").await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let shared = Arc::new(Shared::default());
    let url = format!("wss://localhost:{agent_port}/v1/agent");
    let started = Instant::now();
    for (i, (name, tls)) in configs.into_iter().enumerate() {
        tokio::spawn(agent(i, name, url.clone(), tls, o.clone(), shared.clone()));
        // Ramp: a few hundred handshakes in flight at a time, as agents of a real fleet start.
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let Some(connect_time) = wait_connected(&shared, o.agents, Duration::from_secs(600)).await
    else {
        eprintln!(
            "only {} of {} agents connected",
            shared.connected.load(Ordering::Relaxed),
            o.agents
        );
        let _ = fleet.kill();
        let _ = fleet.wait();
        return;
    };
    let connect_time = connect_time.max(started.elapsed());
    eprintln!(
        "{} agents connected in {:.1}s; steady state for {}s",
        o.agents,
        connect_time.as_secs_f64(),
        o.steady.as_secs()
    );

    // Latency: the API's event stream carries each delta; match it to its send time.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let events = api.events().await.expect("events");
    let (sent, lat) = (shared.clone(), latencies.clone());
    let listener = tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(Ok(event)) = events.next().await {
            if event.name != "object" {
                continue;
            }
            let Some(start) = event.data.find("main@sha1:") else {
                continue;
            };
            let revision: String = event.data[start..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            if let Some(at) = sent
                .sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&revision)
            {
                lat.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(at.elapsed());
            }
        }
    });
    let pid = fleet.id();
    let (_, cpu_before) = usage(pid);
    let window = Instant::now();
    let mut peak_rss = 0;
    while window.elapsed() < o.steady {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_rss = peak_rss.max(usage(pid).0);
    }
    let (rss, cpu_after) = usage(pid);
    let cpu = (cpu_after - cpu_before) / window.elapsed().as_secs_f64();
    listener.abort();
    let mut samples = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    samples.sort();

    // Restart: kill the fleet, start it again, time until every agent is back.
    let _ = fleet.kill();
    let _ = fleet.wait();
    let restarted = Instant::now();
    let mut fleet = start_fleet(&dir, agent_port, api_port, o.heartbeat);
    let reconnect = wait_connected(&shared, o.agents, Duration::from_secs(600)).await;
    let _ = fleet.kill();
    let _ = fleet.wait();
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "fleet benchmark: {} agents, heartbeat {}s, delta every {}s, fleet on {} cores",
        o.agents,
        o.heartbeat.as_secs(),
        o.delta.as_secs(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "  all connected in        {:>8.1} s",
        connect_time.as_secs_f64()
    );
    println!(
        "  fleet RSS (steady/peak) {:>8.1} / {:.1} MiB   (goal < 2048 MiB at 10,000)",
        rss as f64 / 1048576.0,
        peak_rss as f64 / 1048576.0
    );
    println!("  fleet CPU               {:>8.2} cores", cpu);
    println!(
        "  delta -> API  p50       {:>8.1} ms   ({} samples)",
        percentile(&samples, 0.5).as_secs_f64() * 1000.0,
        samples.len()
    );
    println!(
        "  delta -> API  p99       {:>8.1} ms   (goal < 1000 ms)",
        percentile(&samples, 0.99).as_secs_f64() * 1000.0
    );
    match reconnect {
        Some(t) => println!(
            "  reconnect after restart {:>8.1} s   (goal < 60 s), since the restart {:.1} s",
            t.as_secs_f64(),
            restarted.elapsed().as_secs_f64()
        ),
        None => println!("  reconnect after restart: not all agents back within 600 s"),
    }
    println!(
        "  anchors (documented, not measured here): OCM \"thousand-ish clusters\" per hub; KubeFleet hub 8-12 cores for 1,000 clusters"
    );
}
