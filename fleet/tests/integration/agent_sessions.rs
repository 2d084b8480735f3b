//! Agents (the real FleetLink) connect to a real fleet over mutual TLS on loopback, report,
//! show in the API, take commands, and survive a fleet restart.

use crate::support;

use fleet::server::api::{ClusterDetail, ClusterObject, Matrix};
use fleet::server::{ClusterView, ConnectionState};
use proto::{Ack, Readiness};
use support::{Pki, SimAgent, kustomization, wait_state};

const CLUSTERS: [&str; 3] = ["staging", "production", "production-clone"];

#[actix_web::test]
async fn three_agents_connect_report_and_show_in_the_api() {
    let mut pki = Pki::new("three");
    let mut certs = vec![];
    for name in CLUSTERS {
        certs.push(pki.add_cluster(name).await);
    }
    let fleet = pki.start_fleet().await;
    let mut agents: Vec<SimAgent> = CLUSTERS
        .iter()
        .zip(&certs)
        .map(|(name, cert)| {
            let objects = vec![
                kustomization("infrastructure", "main@sha1:1111", Readiness::True),
                kustomization("apps", &format!("main@sha1:{name}"), Readiness::False),
            ];
            SimAgent::start(pki.link_config(&fleet.agent_url(), cert), objects)
        })
        .collect();
    for agent in &mut agents {
        agent.wait(|s| s.connected).await;
    }
    wait_state(&fleet.state, "three clusters with two objects each", |s| {
        s.clusters()
            .iter()
            .all(|c| c.state == ConnectionState::Connected && c.objects == 2)
    })
    .await;

    let api = pki.admin_client(&fleet);
    let clusters: Vec<ClusterView> = api.get("/api/v1/clusters").await.expect("clusters");
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["production", "production-clone", "staging"]);
    assert!(
        clusters
            .iter()
            .all(|c| c.state == ConnectionState::Connected && c.ready == 1)
    );
    assert_eq!(
        clusters[2].agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        clusters[2].labels.get("env").map(String::as_str),
        Some("staging")
    );

    let staging: ClusterDetail = api
        .get("/api/v1/clusters/staging")
        .await
        .expect("one cluster");
    let revisions: Vec<_> = staging
        .items
        .iter()
        .map(|o| o.revision.clone().unwrap_or_default())
        .collect();
    assert_eq!(revisions, ["main@sha1:staging", "main@sha1:1111"]);

    // A delta reaches the API.
    agents[0]
        .link
        .do_send(agent::fleet_link::StatusChanged(kustomization(
            "apps",
            "main@sha1:2222",
            Readiness::True,
        )));
    wait_state(&fleet.state, "staging's new revision", |s| {
        s.objects("staging", Some("Kustomization"))
            .is_some_and(|o| {
                o.iter()
                    .any(|k| k.revision.as_deref() == Some("main@sha1:2222"))
            })
    })
    .await;
    let all: Vec<ClusterObject> = api
        .get("/api/v1/objects?kind=kustomization")
        .await
        .expect("objects");
    assert_eq!(all.len(), 6);
    let matrix: Matrix = api
        .get("/api/v1/matrix?kind=Kustomization")
        .await
        .expect("matrix");
    assert_eq!(matrix.clusters.len(), 3);
    let apps = matrix
        .rows
        .iter()
        .find(|r| r.object.name == "apps")
        .expect("apps row");
    assert_eq!(
        apps.clusters["staging"].revision.as_deref(),
        Some("main@sha1:2222")
    );
    assert_eq!(apps.clusters["staging"].ready, Readiness::True);
    assert_eq!(
        apps.clusters["production"].revision.as_deref(),
        Some("main@sha1:production")
    );

    // The CLI's table shows it, Flux-style.
    let table = fleet::cmd::get::clusters_table(&clusters);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("production-clone   Connected"), "{table}");

    // A command is relayed to the agent and answered with its Ack.
    let ack: Ack = api
        .post("/api/v1/clusters/production/objects/kustomization/flux-system/apps/reconcile")
        .await
        .expect("command");
    assert!(ack.ok, "{ack:?}");
    assert_eq!(
        ack.message,
        "reconcile requested for Kustomization/flux-system/apps"
    );
    let seen = agents[1].commands.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].action, proto::CommandAction::ReconcileNow);
    let failed: Ack = api
        .post("/api/v1/clusters/production/objects/Kustomization/flux-system/missing/suspend")
        .await
        .expect("a failed command still answers");
    assert!(!failed.ok);
    assert!(
        agents[0].commands.lock().expect("lock").is_empty(),
        "staging got no command"
    );

    // Metrics.
    let (status, metrics) = api.get_text("/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("flotilla_fleet_connected_agents 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"flotilla_fleet_clusters{state="Connected"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("flotilla_fleet_status_propagation_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"flotilla_fleet_messages_total{type="delta"}"#),
        "{metrics}"
    );

    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

#[actix_web::test]
async fn the_api_takes_an_admin_certificate_or_the_token_and_nothing_else() {
    let mut pki = Pki::new("auth");
    let staging = pki.add_cluster("staging").await;
    let fleet = pki.start_fleet().await;

    let by_token: Vec<ClusterView> = pki
        .token_client(&fleet, &pki.token)
        .get("/api/v1/clusters")
        .await
        .expect("token");
    assert_eq!(by_token.len(), 1);
    let wrong = pki
        .token_client(&fleet, "not-the-token")
        .get::<serde_json::Value>("/api/v1/clusters")
        .await;
    assert!(
        matches!(
            wrong,
            Err(fleet::client::ClientError::Api { status: 403, .. })
        ),
        "{wrong:?}"
    );

    let anonymous = fleet::client::ApiClient::new(
        &fleet.api_url(),
        pki.ca.cert_pem(),
        fleet::client::Credential::Token(proto::pki::SecretPem::new(String::new())),
    )
    .expect("client");
    let refused = anonymous.get::<serde_json::Value>("/api/v1/clusters").await;
    assert!(
        matches!(
            refused,
            Err(fleet::client::ClientError::Api {
                status: 401 | 403,
                ..
            })
        ),
        "{refused:?}"
    );

    let agent_cert = fleet::client::ApiClient::new(
        &fleet.api_url(),
        pki.ca.cert_pem(),
        fleet::client::Credential::Certificate {
            cert_pem: staging.cert_pem.clone(),
            key_pem: staging.key_pem.clone(),
        },
    )
    .expect("client");
    let forbidden = agent_cert
        .get::<serde_json::Value>("/api/v1/clusters")
        .await;
    assert!(
        matches!(
            forbidden,
            Err(fleet::client::ClientError::Api { status: 403, .. })
        ),
        "{forbidden:?}"
    );
    let (status, body) = agent_cert
        .get_text("/healthz")
        .await
        .expect("healthz needs no credential");
    assert_eq!((status, body.as_str()), (200, "ok"));

    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

#[actix_web::test]
async fn after_a_fleet_restart_agents_reconnect_and_resync() {
    let mut pki = Pki::new("restart");
    let mut certs = vec![];
    for name in CLUSTERS {
        certs.push(pki.add_cluster(name).await);
    }
    let fleet = pki.start_fleet().await;
    let (agent_port, api_port) = (fleet.agent_addr.port(), fleet.api_addr.port());
    let url = fleet.agent_url();
    let mut agents: Vec<SimAgent> = certs
        .iter()
        .map(|cert| {
            SimAgent::start(
                pki.link_config(&url, cert),
                vec![kustomization("apps", "main@sha1:1", Readiness::True)],
            )
        })
        .collect();
    for agent in &mut agents {
        agent.wait(|s| s.connected && s.sessions == 1).await;
    }

    fleet.stop().await;
    for agent in &mut agents {
        agent.wait(|s| !s.connected).await;
    }
    // Reconciling goes on while the fleet is away: the agents' status keeps changing.
    for agent in &agents {
        agent
            .link
            .do_send(agent::fleet_link::StatusChanged(kustomization(
                "apps",
                "main@sha1:2",
                Readiness::True,
            )));
        agent
            .link
            .do_send(agent::fleet_link::StatusChanged(kustomization(
                "new",
                "main@sha1:2",
                Readiness::Unknown,
            )));
    }

    let fleet = server::start_on(&pki, agent_port, api_port).await;
    for agent in &mut agents {
        agent.wait(|s| s.connected && s.sessions == 2).await;
    }
    wait_state(
        &fleet.state,
        "every cluster resynced with what changed while away",
        |s| {
            CLUSTERS.iter().all(|c| {
                s.objects(c, None).is_some_and(|o| {
                    o.len() == 2
                        && o.iter()
                            .all(|k| k.revision.as_deref() == Some("main@sha1:2"))
                })
            })
        },
    )
    .await;
    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

#[actix_web::test]
async fn live_changes_arrive_as_server_sent_events() {
    use futures::StreamExt;

    let mut pki = Pki::new("events");
    let staging = pki.add_cluster("staging").await;
    let fleet = pki.start_fleet().await;
    let events = pki
        .admin_client(&fleet)
        .events()
        .await
        .expect("event stream");
    futures::pin_mut!(events);
    let first = events.next().await.expect("an event").expect("readable");
    assert_eq!(first.name, "cluster");
    assert!(
        first.data.contains(r#""state":"Pending""#),
        "{}",
        first.data
    );

    let _agent = SimAgent::start(
        pki.link_config(&fleet.agent_url(), &staging),
        vec![kustomization("apps", "main@sha1:live", Readiness::True)],
    );
    let mut saw_connected = false;
    let mut saw_object = false;
    while !(saw_connected && saw_object) {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
            .await
            .expect("events keep coming")
            .expect("stream open")
            .expect("readable");
        saw_connected |= event.name == "cluster" && event.data.contains(r#""state":"Connected""#);
        saw_object |= event.name == "object" && event.data.contains("main@sha1:live");
    }
    fleet.stop().await;
}

#[actix_web::test]
async fn a_rotated_certificate_takes_over_without_dropping_the_agent() {
    use fleet::registry::{CertificateRecord, Registration, Registry};

    let mut pki = Pki::new("rotation");
    let old = pki.add_cluster("staging").await;
    let fleet = pki.start_fleet().await;
    let (agent_port, api_port) = (fleet.agent_addr.port(), fleet.api_addr.port());
    let mut agent = SimAgent::start(pki.link_config(&fleet.agent_url(), &old), vec![]);
    agent.wait(|s| s.connected).await;

    let new = pki
        .ca
        .issue_client(
            &proto::pki::Identity::Cluster("staging".into()),
            std::time::Duration::from_secs(3600),
        )
        .expect("new cert");
    pki.secrets.push(new.key_pem.expose().to_string());
    let now = chrono::Utc::now();
    let rotation = Registration {
        name: "staging".into(),
        labels: Default::default(),
        certificates: vec![CertificateRecord {
            fingerprint: new.fingerprint.clone(),
            issued_at: now,
            not_after: new.not_after,
        }],
        registered_at: now,
    };
    pki.registry.register(rotation, true).await.expect("rotate");
    fleet.reload_registry().await.expect("reload");
    let renewed = pki.link_config(&fleet.agent_url(), &new).tls;
    agent
        .link
        .do_send(agent::fleet_link::RenewCredentials(renewed));

    // The open connection stays: a status change still flows over the first session.
    agent
        .link
        .do_send(agent::fleet_link::StatusChanged(kustomization(
            "apps",
            "main@sha1:r",
            Readiness::True,
        )));
    wait_state(&fleet.state, "status over the original session", |s| {
        s.objects("staging", None).is_some_and(|o| o.len() == 1)
    })
    .await;
    assert_eq!(agent.status.borrow().sessions, 1);
    assert!(agent.status.borrow().connected);

    // The next connection presents the new certificate.
    fleet.stop().await;
    agent.wait(|s| !s.connected).await;
    let fleet = server::start_on(&pki, agent_port, api_port).await;
    agent.wait(|s| s.connected && s.sessions == 2).await;
    let opened = format!("fingerprint={}", new.fingerprint);
    assert!(
        support::logs().contains(&opened),
        "the agent did not reconnect with the new certificate"
    );
    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

mod server {
    use super::support::Pki;
    use fleet::server::RunningFleet;

    /// Starts a fleet on the given ports (a restart where agents already point).
    pub async fn start_on(pki: &Pki, agent_port: u16, api_port: u16) -> RunningFleet {
        fleet::server::start(pki.serve_config(agent_port, api_port), pki.registry.clone())
            .await
            .expect("restart")
    }
}
