//! `flotilla demo` end to end: the demo's library entry point runs the whole fleet in this
//! process; the test reads the fleet API the CLI reads (`flotilla get kustomizations -A -o
//! json`), commits to the demo repository as a user would, and restarts the demo from the same
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet::client::ApiClient;
use fleet::demo::DemoConfig;
use fleet::home::FleetHome;
use serde_json::Value;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// An error with its causes, as the CLI prints it.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A demo running on its own thread and actix system, as `flotilla demo` runs it.
struct Demo {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Demo {
    fn start(config: DemoConfig) -> Demo {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::with_tokio_rt(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            });
            system
                .block_on(fleet::demo::run(config, async move {
                    let _ = stopped.await;
                }))
                .map_err(|e| chain(&e))
        });
        Demo {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err("the demo panicked".into()),
            None => Ok(()),
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `flotilla get kustomizations -A -o json`, read through the same API call and client.
async fn kustomizations(config: &DemoConfig) -> Option<Vec<Value>> {
    let home = FleetHome::new(config.fleet_home());
    let client = ApiClient::from_home(&config.api_url(), &home, None).ok()?;
    client.get("/api/v1/objects?kind=Kustomization").await.ok()
}

/// Cluster → (Kustomization name → (ready, revision)).
type Fleet = BTreeMap<String, BTreeMap<String, (String, String)>>;

fn by_cluster(items: &[Value]) -> Fleet {
    let mut fleet = Fleet::new();
    for item in items {
        let text = |key: &str| item[key].as_str().unwrap_or_default().to_string();
        fleet
            .entry(text("cluster"))
            .or_default()
            .insert(text("name"), (text("ready"), text("revision")));
    }
    fleet
}

fn all_ready(fleet: &Fleet) -> bool {
    ["staging", "production", "production-clone"]
        .iter()
        .all(|c| {
            fleet.get(*c).is_some_and(|ks| {
                ["flux-system", "infrastructure", "apps"]
                    .iter()
                    .all(|k| ks.get(*k).is_some_and(|(ready, _)| ready == "True"))
            })
        })
}

/// Polls the fleet until `done` holds, for at most `limit`.
async fn wait_for(
    config: &DemoConfig,
    what: &str,
    limit: Duration,
    done: impl Fn(&Fleet) -> bool,
) -> Fleet {
    let deadline = Instant::now() + limit;
    let mut last = Fleet::new();
    while Instant::now() < deadline {
        if let Some(items) = kustomizations(config).await {
            last = by_cluster(&items);
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}; the fleet showed {last:#?}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=demo user",
            "-c",
            "user.email=user@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("git is required: {e}"));
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn revisions(fleet: &Fleet, cluster: &str) -> Vec<String> {
    fleet
        .get(cluster)
        .map(|ks| ks.values().map(|(_, r)| r.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn the_demo_syncs_three_clusters_and_a_staging_commit_reaches_staging_only_and_survives_a_restart()
{
    let dir = TempDir(std::env::temp_dir().join(format!(
        "flotilla-demo-test-{}-{}",
        std::process::id(),
        chrono_free_millis()
    )));
    let config = DemoConfig {
        dir: dir.0.clone(),
        port: free_port(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    let demo = Demo::start(config.clone());
    let repo = config.repo_dir();
    let fleet = runtime.block_on(wait_for(
        &config,
        "every Kustomization of the three clusters to be Ready",
        Duration::from_secs(180),
        all_ready,
    ));
    let first = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "a clean working tree"
    );
    for cluster in ["staging", "production", "production-clone"] {
        assert_eq!(
            revisions(&fleet, cluster),
            vec![format!("main@sha1:{first}"); 3]
                .into_iter()
                .map(|r| if cluster == "staging" {
                    r
                } else {
                    r.replace("main@", "production@")
                })
                .collect::<Vec<_>>(),
            "{cluster} applied the first commit"
        );
    }

    let patch = repo.join("apps/staging/podinfo-patch.yaml");
    let text = std::fs::read_to_string(&patch).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("replicas: 1"), "{text}");
    std::fs::write(&patch, text.replace("replicas: 1", "replicas: 3"))
        .unwrap_or_else(|e| panic!("{e}"));
    git(&repo, &["commit", "-qam", "staging: three replicas"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let staged = format!("main@sha1:{second}");
    // The requirement: the new revision shows on staging within 10 seconds.
    let fleet = runtime.block_on(wait_for(
        &config,
        "staging's apps Kustomization to apply the new commit",
        Duration::from_secs(10),
        |fleet| {
            fleet
                .get("staging")
                .and_then(|ks| ks.get("apps"))
                .is_some_and(|(ready, revision)| ready == "True" && *revision == staged)
        },
    ));
    for cluster in ["production", "production-clone"] {
        assert!(
            revisions(&fleet, cluster)
                .iter()
                .all(|r| *r == format!("production@sha1:{first}")),
            "{cluster} must stay on the first commit: {fleet:#?}"
        );
    }
    demo.stop()
        .unwrap_or_else(|e| panic!("the demo failed: {e}"));

    // Running again resumes: the same repository, CA and clusters, nothing re-created.
    let ca = std::fs::read_to_string(config.fleet_home().join("ca.crt"))
        .unwrap_or_else(|e| panic!("{e}"));
    let demo = Demo::start(config.clone());
    runtime.block_on(wait_for(
        &config,
        "the resumed clusters to be Ready on the commits they had",
        Duration::from_secs(180),
        |fleet| {
            all_ready(fleet)
                && fleet
                    .get("staging")
                    .and_then(|ks| ks.get("apps"))
                    .is_some_and(|(_, revision)| *revision == staged)
        },
    ));
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), second);
    assert_eq!(
        std::fs::read_to_string(config.fleet_home().join("ca.crt"))
            .unwrap_or_else(|e| panic!("{e}")),
        ca,
        "the CA is reused"
    );
    demo.stop()
        .unwrap_or_else(|e| panic!("the demo failed: {e}"));
}

/// Milliseconds since the epoch, to name the temporary directory.
fn chrono_free_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}
