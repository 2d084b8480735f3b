//! Registrations and revocations as `Cluster` objects in a management cluster (kubesim with
//! an on-disk store): they survive a restart of both the fleet and the management cluster,
//! and a fleet backed by them admits and refuses agents accordingly.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use fleet::registry::{CertificateRecord, KubeRegistry, Registration, Registry, RegistryError};
use proto::Readiness;
use proto::pki::{Fingerprint, Identity};
use support::{Pki, SimAgent, TempDir, kustomization, wait_state};

fn registration(name: &str, fingerprint: &str) -> Registration {
    let now = chrono::Utc::now();
    Registration {
        name: name.into(),
        labels: BTreeMap::from([("env".to_string(), name.to_string())]),
        certificates: vec![CertificateRecord {
            fingerprint: Fingerprint(fingerprint.into()),
            issued_at: now,
            not_after: now + chrono::Duration::days(30),
        }],
        registered_at: now,
    }
}

async fn sim(dir: &TempDir) -> kubesim::RunningServer {
    let config = kubesim::Config {
        data_dir: Some(dir.0.clone()),
        ..kubesim::Config::default()
    };
    kubesim::Server::start(config)
        .await
        .expect("kubesim starts")
}

async fn registry(server: &kubesim::RunningServer) -> KubeRegistry {
    let registry = KubeRegistry::from_kubeconfig(&server.kubeconfig(), "flotilla-system")
        .await
        .expect("client");
    registry.install().await.expect("namespace and CRD");
    registry
}

#[actix_web::test]
async fn registrations_and_revocations_survive_a_management_cluster_restart() {
    support::init_logging();
    let dir = TempDir::new("kube-registry");
    let server = sim(&dir).await;
    let reg = registry(&server).await;
    reg.register(registration("staging", "aa"), false)
        .await
        .expect("register staging");
    reg.register(registration("production", "bb"), false)
        .await
        .expect("register production");
    reg.register(registration("staging", "cc"), true)
        .await
        .expect("rotate staging");
    let twice = reg.register(registration("staging", "dd"), false).await;
    assert!(
        matches!(twice, Err(RegistryError::AlreadyRegistered(_))),
        "{twice:?}"
    );
    reg.remove("production").await.expect("remove");
    let again = reg.register(registration("production", "ee"), false).await;
    assert!(matches!(again, Err(RegistryError::Removed(_))), "{again:?}");
    server.shutdown().await;

    let server = sim(&dir).await;
    let reg = registry(&server).await;
    let contents = reg.load().await.expect("load");
    let names: Vec<&String> = contents.clusters.keys().collect();
    assert_eq!(names, ["staging"]);
    let staging = &contents.clusters["staging"];
    let fingerprints: Vec<&str> = staging
        .certificates
        .iter()
        .map(|c| c.fingerprint.0.as_str())
        .collect();
    assert_eq!(fingerprints, ["aa", "cc"]);
    assert_eq!(
        staging.labels.get("env").map(String::as_str),
        Some("staging")
    );
    let revoked: Vec<&str> = contents
        .revoked
        .iter()
        .map(|r| r.fingerprint.0.as_str())
        .collect();
    assert_eq!(revoked, ["bb"]);
    server.shutdown().await;
}

#[actix_web::test]
async fn a_fleet_backed_by_the_management_cluster_admits_and_revokes_agents() {
    let pki = Pki::new("kube-fleet");
    let dir = TempDir::new("kube-fleet");
    let server = sim(&dir).await;
    let reg = std::sync::Arc::new(registry(&server).await);
    let cert = pki
        .ca
        .issue_client(
            &Identity::Cluster("staging".into()),
            Duration::from_secs(3600),
        )
        .expect("cert");
    reg.register(
        Registration {
            certificates: vec![CertificateRecord {
                fingerprint: cert.fingerprint.clone(),
                issued_at: chrono::Utc::now(),
                not_after: cert.not_after,
            }],
            ..registration("staging", "unused")
        },
        false,
    )
    .await
    .expect("register");

    let fleet = fleet::server::start(pki.serve_config(0, 0), reg.clone())
        .await
        .expect("fleet");
    let mut agent = SimAgent::start(
        pki.link_config(&fleet.agent_url(), &cert),
        vec![kustomization("apps", "main@sha1:1", Readiness::True)],
    );
    agent.wait(|s| s.connected).await;
    wait_state(&fleet.state, "staging reported", |s| {
        s.objects("staging", None).is_some_and(|o| o.len() == 1)
    })
    .await;

    // What the fleet observed lands in the Cluster object's status.
    assert_eq!(fleet.report_status().await.expect("report"), 1);
    assert_eq!(
        fleet.report_status().await.expect("report again"),
        0,
        "unchanged status is not rewritten"
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let clusters: kube::Api<api::fleet::Cluster> = kube::Api::namespaced(
        kube::Client::try_from(config).expect("client"),
        "flotilla-system",
    );
    let object = clusters.get("staging").await.expect("Cluster object");
    let status = object.status.expect("status written");
    assert!(status.connected);
    assert_eq!(
        status.agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let summary = status.summary.expect("summary");
    assert_eq!(
        (summary.kustomizations.total, summary.kustomizations.ready),
        (1, 1)
    );

    reg.remove("staging").await.expect("remove");
    fleet.reload_registry().await.expect("reload");
    let status = agent.wait(|s| !s.connected).await;
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("4004")),
        "{status:?}"
    );
    fleet.stop().await;
    server.shutdown().await;
}
