//! The demo's life: set everything up in order, report progress, follow the repository's
//! branches, and take everything down again on shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proto::pki::{Identity, SecretPem};

use super::agents::{self, AgentSpec, RunningAgent};
use super::clusters::{self, SimCluster, Sync};
use super::nudge;
use super::progress::{ClusterProgress, Printed};
use super::repo::{self, RepoState};
use super::{CLUSTERS, DemoConfig, DemoError};
use crate::home::FleetHome;
use crate::registry::{CertificateRecord, KubeRegistry, Registration, Registry};
use crate::server::{self, RunningFleet, ServeConfig};

/// How long the demo's cluster certificates live.
const CERT_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// How often the branches are checked for new commits.
const BRANCH_POLL: Duration = Duration::from_secs(1);

/// Runs the demo until `shutdown` completes; must run inside an actix system whose tokio
/// runtime can run the kubesims (a multi-threaded one keeps them off the fleet's thread).
pub async fn run(config: DemoConfig, shutdown: impl Future<Output = ()>) -> Result<(), DemoError> {
    let started = std::time::Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut demo = Demo::default();
    let outcome = tokio::select! {
        outcome = demo.start(&config) => outcome,
        () = &mut shutdown => Ok(()),
    };
    let outcome = match outcome {
        Ok(()) if demo.started() => demo.follow(&config, started, shutdown).await,
        other => other,
    };
    demo.stop().await;
    if outcome.is_ok() {
        println!(
            "Stopped. Run `flotilla demo --dir {}` again to resume.",
            config.dir.display()
        );
    }
    outcome
}

#[derive(Default)]
struct Demo {
    management: Option<SimCluster>,
    clusters: Vec<SimCluster>,
    fleet: Option<RunningFleet>,
    agents: Vec<RunningAgent>,
    expected: BTreeMap<String, Option<usize>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Demo {
    fn started(&self) -> bool {
        self.agents.len() == CLUSTERS.len()
    }

    async fn start(&mut self, config: &DemoConfig) -> Result<(), DemoError> {
        let dir = &config.dir;
        // Fail before creating anything rather than after starting four clusters.
        drop(
            std::net::TcpListener::bind(("127.0.0.1", config.port)).map_err(|source| {
                DemoError::PortInUse {
                    port: config.port,
                    source,
                }
            })?,
        );
        std::fs::create_dir_all(dir.join("kubeconfigs")).map_err(io(dir))?;

        let repo_dir = config.repo_dir();
        match repo::ensure(&repo_dir)? {
            RepoState::Created(commit) => println!(
                "✔ Git repository {} created from config/demo (commit {})",
                repo_dir.display(),
                short(&commit.to_string())
            ),
            RepoState::Reused => println!("✔ Git repository {} reused", repo_dir.display()),
        }
        let url = repo::url(&repo_dir)?;

        let home = FleetHome::new(config.fleet_home());
        if home.path("ca.crt").exists() {
            println!("✔ fleet CA reused from {}", home.dir().display());
        } else {
            let report = home.init("flotilla-demo", &[], false)?;
            println!(
                "✔ fleet CA created in {} ({})",
                home.dir().display(),
                report.ca_fingerprint
            );
        }

        let management = SimCluster::start(
            "management",
            dir.join("state/management"),
            clusters::kubeconfig_path(dir, "management"),
        )
        .await?;
        let registry = KubeRegistry::new(
            management.client.clone(),
            crate::registry::DEFAULT_NAMESPACE,
        );
        registry.install().await?;
        let registry: Arc<dyn Registry> = Arc::new(registry);
        println!(
            "✔ management cluster (kubesim) holds the fleet's Cluster objects; kubeconfig {}",
            management.kubeconfig.display()
        );
        self.management = Some(management);

        for (name, branch) in CLUSTERS {
            let cluster = SimCluster::start(
                name,
                dir.join("state").join(name),
                clusters::kubeconfig_path(dir, name),
            )
            .await?;
            let sync = Sync {
                url: url.clone(),
                branch: branch.to_string(),
                path: format!("./clusters/{name}"),
            };
            clusters::bootstrap(&cluster.client, &sync).await?;
            println!(
                "✔ cluster {name} (kubesim) bootstrapped: GitRepository flux-system follows {branch}, Kustomization flux-system syncs {}",
                sync.path
            );
            self.expected
                .insert(name.to_string(), expected_kustomizations(&repo_dir, name));
            self.clusters.push(cluster);
        }

        let ca = home.ca()?;
        let registered = registry.load().await?.clusters;
        for (name, _) in CLUSTERS {
            let agent_dir = dir.join("agents").join(name);
            std::fs::create_dir_all(&agent_dir).map_err(io(&agent_dir))?;
            let (cert, key) = (agent_dir.join("tls.crt"), agent_dir.join("tls.key"));
            let is_registered = registered.contains_key(name);
            if is_registered && cert.exists() && key.exists() {
                println!("✔ cluster {name} already registered; its certificate is reused");
                continue;
            }
            let issued = ca.issue_client(&Identity::Cluster(name.to_string()), CERT_VALIDITY)?;
            let now = chrono::Utc::now();
            registry
                .register(
                    Registration {
                        name: name.to_string(),
                        labels: BTreeMap::from([("env".to_string(), env_label(name))]),
                        certificates: vec![CertificateRecord {
                            fingerprint: issued.fingerprint.clone(),
                            issued_at: now,
                            not_after: issued.not_after,
                        }],
                        registered_at: now,
                    },
                    is_registered,
                )
                .await?;
            crate::home::write_file(&cert, &issued.cert_pem, 0o644)?;
            crate::home::write_file(&key, issued.key_pem.expose(), 0o600)?;
            println!(
                "✔ cluster {name} registered; certificate {} issued",
                issued.fingerprint
            );
        }

        let fleet = server::start(
            ServeConfig {
                agent_addr: ([127, 0, 0, 1], 0).into(),
                api_addr: ([127, 0, 0, 1], config.port).into(),
                ca_pem: home.read_public("ca.crt")?,
                server_cert_pem: home.read_public("server.crt")?,
                server_key_pem: home.read_secret("server.key")?,
                admin_token: Some(home.read_secret("admin-token")?),
                heartbeat: Duration::from_secs(5),
                missed_heartbeats: 3,
                registry_poll: Duration::from_secs(5),
                workers: 1,
            },
            registry,
        )
        .await?;
        println!(
            "✔ fleet server: agents connect to {}, API and console on {}",
            fleet.agent_url(),
            fleet.api_url()
        );
        let fleet_url = fleet.agent_url();
        self.fleet = Some(fleet);

        for cluster in &self.clusters {
            let agent_dir = dir.join("agents").join(&cluster.name);
            self.agents.push(agents::start(AgentSpec {
                cluster: cluster.name.clone(),
                kubeconfig: cluster.kubeconfig.clone(),
                storage_dir: agent_dir.join("storage"),
                fleet_url: fleet_url.clone(),
                fleet_ca: home.path("ca.crt"),
                cert: agent_dir.join("tls.crt"),
                key: agent_dir.join("tls.key"),
            })?);
            println!(
                "✔ agent for {} started (mutual TLS to the fleet)",
                cluster.name
            );
        }
        Ok(())
    }

    /// Prints progress until every cluster is Ready, then the summary, then follows the
    /// branches and prints what changes, until `shutdown`.
    async fn follow(
        &mut self,
        config: &DemoConfig,
        started: std::time::Instant,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), DemoError> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        let state = fleet.state.clone();
        let mut events = state.subscribe();
        let mut printed = Printed::default();
        let mut announced = false;
        println!("Waiting for every cluster's Kustomizations to be Ready:");
        let repo_dir = config.repo_dir();
        let mut tips: BTreeMap<&str, Option<gix::ObjectId>> = BTreeMap::new();
        for branch in [repo::MAIN, repo::PRODUCTION] {
            tips.insert(branch, repo::tip(&repo_dir, branch).ok().flatten());
        }
        let mut poll = tokio::time::interval(BRANCH_POLL);
        let mut asked = std::collections::BTreeSet::new();
        loop {
            let mut all_ready = true;
            for cluster in &self.clusters {
                let objects = state.objects(&cluster.name, None).unwrap_or_default();
                for (namespace, name) in nudge::stale_waits(&cluster.name, &objects, &mut asked) {
                    // Best effort: the Kustomization retries on its own anyway.
                    let _ = clusters::request_reconcile(&cluster.client, &namespace, &name).await;
                }
            }
            for (name, _) in CLUSTERS {
                let expected = self.expected.get(name).copied().flatten();
                let progress = ClusterProgress::of(&state, name, expected);
                all_ready &= progress.is_ready();
                if let Some(line) = printed.changed(name, &progress) {
                    println!("{line}");
                }
            }
            if all_ready && !announced {
                announced = true;
                println!(
                    "All clusters Ready, {:.1}s after the demo started.",
                    started.elapsed().as_secs_f64()
                );
                print_summary(config, &self.clusters, self.management.as_ref())?;
            }
            if let Some(agent) = self.agents.iter().find(|a| a.finished()) {
                let cluster = agent.cluster.clone();
                let index = self.agents.iter().position(|a| a.cluster == cluster);
                let message = index
                    .map(|i| self.agents.remove(i).stop())
                    .and_then(Result::err)
                    .unwrap_or_else(|| "stopped".into());
                return Err(DemoError::Agent { cluster, message });
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = events.recv() => {}
                _ = poll.tick() => {
                    self.poke_moved_branches(&repo_dir, &mut tips).await;
                }
            }
        }
    }

    /// Asks the clusters that follow a branch that moved to fetch now.
    async fn poke_moved_branches(
        &self,
        repo_dir: &Path,
        tips: &mut BTreeMap<&str, Option<gix::ObjectId>>,
    ) {
        for (branch, last) in tips.iter_mut() {
            let Ok(now) = repo::tip(repo_dir, branch) else {
                continue;
            };
            if now == *last {
                continue;
            }
            *last = now;
            let Some(commit) = now else { continue };
            let followers: Vec<&SimCluster> = CLUSTERS
                .iter()
                .filter(|(_, b)| b == branch)
                .filter_map(|(name, _)| self.clusters.iter().find(|c| c.name == *name))
                .collect();
            let names: Vec<&str> = followers.iter().map(|c| c.name.as_str()).collect();
            println!(
                "→ {branch} is now at {}: asking {} to fetch",
                short(&commit.to_string()),
                names.join(" and ")
            );
            for cluster in followers {
                if let Err(error) = clusters::request_fetch(&cluster.client).await {
                    let cause = std::error::Error::source(&error)
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    println!(
                        "  {}: could not request a fetch: {error}{cause}",
                        cluster.name
                    );
                }
            }
        }
    }

    /// Stops the agents first (so none reports a vanished cluster), then the fleet, then the
    /// kubesims, which persist their state on the way down.
    async fn stop(&mut self) {
        let agents = std::mem::take(&mut self.agents);
        let stopped = tokio::task::spawn_blocking(move || {
            agents
                .into_iter()
                .map(|a| (a.cluster.clone(), a.stop()))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (cluster, outcome) in stopped {
            if let Err(error) = outcome {
                eprintln!("agent of {cluster}: {error}");
            }
        }
        if let Some(fleet) = self.fleet.take() {
            fleet.stop().await;
        }
        for cluster in std::mem::take(&mut self.clusters) {
            cluster.stop().await;
        }
        if let Some(management) = self.management.take() {
            management.stop().await;
        }
    }
}

/// How many Kustomizations `clusters/NAME` defines, plus the root one; `None` when the path
/// does not build (the agent will report why).
fn expected_kustomizations(repo_dir: &Path, name: &str) -> Option<usize> {
    let fs = kustomize::DiskFs::new(repo_dir).ok()?;
    let objects = kustomize::build(
        &fs,
        &format!("clusters/{name}"),
        &kustomize::Options::default(),
    )
    .ok()?;
    Some(
        1 + objects
            .iter()
            .filter(|o| o.kind() == "Kustomization")
            .count(),
    )
}

fn env_label(cluster: &str) -> String {
    cluster.split('-').next().unwrap_or(cluster).to_string()
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn print_summary(
    config: &DemoConfig,
    clusters: &[SimCluster],
    management: Option<&SimCluster>,
) -> Result<(), DemoError> {
    let home = FleetHome::new(config.fleet_home());
    let token: SecretPem = home.read_secret("admin-token")?;
    let repo_dir = config.repo_dir();
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "flotilla".into());
    let staging = clusters::kubeconfig_path(&config.dir, "staging");
    println!();
    println!("Console: {}/#token={}", config.api_url(), token.expose());
    println!(
        "  (the certificate is the demo fleet's own CA: {}/ca.crt)",
        home.dir().display()
    );
    println!("Kubeconfigs:");
    for cluster in management.into_iter().chain(clusters) {
        println!("  {:<17} {}", cluster.name, cluster.kubeconfig.display());
    }
    println!();
    println!("Things to try (in another terminal):");
    println!("  1. The fleet's Kustomizations:");
    println!(
        "       export FLOTILLA_HOME={} FLOTILLA_SERVER={}",
        home.dir().display(),
        config.api_url()
    );
    println!("       {exe} get kustomizations -A");
    println!("  2. Change staging's replica count and commit; staging applies it within seconds:");
    println!("       cd {}", repo_dir.display());
    println!(
        "       sed -i 's/replicas: .*/replicas: 3/' apps/staging/podinfo-patch.yaml && git commit -am 'staging: 3 replicas'"
    );
    println!("     then promote it to production and production-clone:");
    println!("       git push . {}:{}", repo::MAIN, repo::PRODUCTION);
    println!("  3. What runs in a cluster:");
    println!(
        "       kubectl --kubeconfig {} get deploy -A",
        staging.display()
    );
    println!();
    println!(
        "Press Ctrl-C to stop; state is kept in {}.",
        config.dir.display()
    );
    Ok(())
}
