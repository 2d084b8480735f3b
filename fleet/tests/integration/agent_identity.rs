//! Who may connect and what a connection may say: revoked, foreign and missing
//! certificates are refused; a cluster cannot speak for another; malformed, oversize and
//! wrong-version frames close only their own connection.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use proto::dial::{self, FleetSocket, WsMessage};
use proto::pki::{Ca, Identity, IssuedCert};
use proto::{AgentMessage, Hello, PROTOCOL_VERSION, Readiness, Snapshot};
use support::{Pki, SimAgent, kustomization, wait_state};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(pki: &Pki, url: &str, cert: &IssuedCert) -> Result<FleetSocket, dial::DialError> {
    let tls = proto::tls::client_config(pki.ca.cert_pem(), Some((&cert.cert_pem, &cert.key_pem)))
        .expect("tls");
    dial::dial(url, Arc::new(tls)).await
}

/// Why the fleet refused this connection, or `None` if it answered: in TLS 1.3 the client
/// finishes its handshake before the server has judged the client certificate, so the
/// refusal (a TLS alert) may only show on the first exchange.
async fn refusal(result: Result<FleetSocket, dial::DialError>) -> Option<String> {
    match result {
        Err(e) => Some(e.to_string()),
        Ok(mut socket) => {
            if let Err(e) = socket
                .send(WsMessage::text(hello_frame(PROTOCOL_VERSION)))
                .await
            {
                return Some(e.to_string());
            }
            match socket.next().await {
                Some(Ok(WsMessage::Text(_))) => None,
                Some(Err(e)) => Some(e.to_string()),
                other => Some(format!("{other:?}")),
            }
        }
    }
}

fn hello_frame(version: u32) -> String {
    proto::frame::encode(&AgentMessage::Hello(Hello {
        protocol_version: version,
        agent_version: "test".into(),
        capabilities: vec![],
    }))
    .expect("encode")
}

/// Says hello and reads the Welcome.
async fn greet(socket: &mut FleetSocket) {
    socket
        .send(WsMessage::text(hello_frame(PROTOCOL_VERSION)))
        .await
        .expect("send hello");
    match socket.next().await {
        Some(Ok(WsMessage::Text(text))) => assert!(text.contains("welcome"), "{text}"),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

/// Reads until the fleet closes; returns the close code and reason.
async fn close_of(socket: &mut FleetSocket) -> (u16, String) {
    let read = async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(WsMessage::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(WsMessage::Close(None)) | Err(_) => return (0, String::new()),
                Ok(_) => {}
            }
        }
        (0, String::new())
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the fleet closes the connection")
}

#[actix_web::test]
async fn a_removed_clusters_certificate_is_refused_although_the_ca_signed_it() {
    let mut pki = Pki::new("revoked");
    let staging = pki.add_cluster("staging").await;
    let fleet = pki.start_fleet().await;
    let mut agent = SimAgent::start(pki.link_config(&fleet.agent_url(), &staging), vec![]);
    agent.wait(|s| s.connected).await;

    use fleet::registry::Registry;
    pki.registry.remove("staging").await.expect("remove");
    fleet.reload_registry().await.expect("reload");
    let status = agent.wait(|s| !s.connected).await;
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("4004")),
        "{status:?}"
    );
    assert!(fleet.state.cluster("staging").is_none());
    let refused = refusal(connect(&pki, &fleet.agent_url(), &staging).await).await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|r| r.contains("CertificateRevoked")),
        "{refused:?}"
    );
    assert!(support::logs().contains("client certificate refused"));
    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

#[actix_web::test]
async fn an_unregistered_clusters_certificate_is_refused() {
    let pki = Pki::new("unregistered");
    let fleet = pki.start_fleet().await;
    let stray = pki
        .ca
        .issue_client(
            &Identity::Cluster("stray".into()),
            Duration::from_secs(3600),
        )
        .expect("cert");
    let refused = refusal(connect(&pki, &fleet.agent_url(), &stray).await).await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|r| r.contains("CertificateRevoked")),
        "{refused:?}"
    );
    fleet.stop().await;
}

#[actix_web::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let mut pki = Pki::new("foreign");
    pki.add_cluster("staging").await;
    let fleet = pki.start_fleet().await;
    let other = Ca::generate("impostor", Duration::from_secs(3600)).expect("other CA");
    let forged = other
        .issue_client(
            &Identity::Cluster("staging".into()),
            Duration::from_secs(3600),
        )
        .expect("cert");
    // The client trusts the real fleet CA but presents the impostor's certificate.
    let tls =
        proto::tls::client_config(pki.ca.cert_pem(), Some((&forged.cert_pem, &forged.key_pem)))
            .expect("tls");
    let result = dial::dial(&fleet.agent_url(), Arc::new(tls)).await;
    let refused = refusal(result).await;
    assert!(
        refused.as_deref().is_some_and(|r| r.contains("UnknownCA")),
        "{refused:?}"
    );
    assert_eq!(
        fleet.state.cluster("staging").map(|c| c.state),
        Some(fleet::server::ConnectionState::Pending)
    );
    fleet.stop().await;
}

#[actix_web::test]
async fn a_client_without_a_certificate_never_reaches_the_application() {
    let pki = Pki::new("anonymous");
    let fleet = pki.start_fleet().await;
    let tls = proto::tls::client_config(pki.ca.cert_pem(), None).expect("tls");
    let tcp = tokio::net::TcpStream::connect(fleet.agent_addr)
        .await
        .expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let outcome = async {
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    }
    .await;
    match outcome {
        Err(e) => assert!(e.to_string().to_lowercase().contains("certificate"), "{e}"),
        Ok(response) => assert!(
            response.is_empty(),
            "the application answered: {}",
            String::from_utf8_lossy(&response)
        ),
    }
    fleet.stop().await;
}

#[actix_web::test]
async fn a_cluster_sending_another_clusters_status_is_rejected_and_logged() {
    let mut pki = Pki::new("impersonation");
    let staging = pki.add_cluster("staging").await;
    pki.add_cluster("production").await;
    let fleet = pki.start_fleet().await;
    let mut socket = connect(&pki, &fleet.agent_url(), &staging)
        .await
        .expect("connect");
    greet(&mut socket).await;
    let forged = AgentMessage::Snapshot(Snapshot {
        cluster: "production".into(),
        sent_at_ms: proto::message::now_ms(),
        objects: vec![kustomization("apps", "main@sha1:evil", Readiness::True)],
    });
    socket
        .send(WsMessage::text(
            proto::frame::encode(&forged).expect("encode"),
        ))
        .await
        .expect("send");
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, 4003, "{reason}");
    assert!(reason.contains("production"), "{reason}");
    assert_eq!(
        fleet.state.objects("production", None).map(|o| o.len()),
        Some(0)
    );
    assert!(
        support::logs().contains(r#"status for cluster "production" rejected"#),
        "not logged"
    );
    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

#[actix_web::test]
async fn malformed_oversize_and_wrong_version_frames_close_only_their_connection() {
    let mut pki = Pki::new("frames");
    let staging = pki.add_cluster("staging").await;
    let production = pki.add_cluster("production").await;
    let fleet = pki.start_fleet().await;
    let mut healthy = SimAgent::start(pki.link_config(&fleet.agent_url(), &production), vec![]);
    healthy.wait(|s| s.connected).await;

    let cases: Vec<(&str, Vec<WsMessage>, u16)> = vec![
        ("not JSON", vec![WsMessage::text("{not json")], 4000),
        (
            "unknown type",
            vec![WsMessage::text(r#"{"type":"launchMissiles"}"#)],
            4000,
        ),
        (
            "status before hello",
            vec![WsMessage::text(r#"{"type":"heartbeat","sentAtMs":1}"#)],
            4000,
        ),
        ("binary", vec![WsMessage::binary(vec![1u8, 2, 3])], 1003),
        (
            "oversize",
            vec![WsMessage::text("x".repeat(proto::MAX_FRAME_BYTES + 1))],
            1009,
        ),
        (
            "another protocol version",
            vec![WsMessage::text(hello_frame(PROTOCOL_VERSION + 1))],
            4001,
        ),
    ];
    for (what, frames, expected) in cases {
        let mut socket = connect(&pki, &fleet.agent_url(), &staging)
            .await
            .expect("connect");
        for frame in frames {
            // The fleet may close before it has read everything; that is the point.
            let _ = socket.send(frame).await;
        }
        let (code, reason) = close_of(&mut socket).await;
        assert_eq!(code, expected, "{what}: {reason}");
        if expected == 4001 {
            assert!(reason.contains("not supported"), "{reason}");
        }
    }

    // The healthy agent never noticed, and its status still flows.
    assert_eq!(healthy.status.borrow().sessions, 1);
    healthy
        .link
        .do_send(agent::fleet_link::StatusChanged(kustomization(
            "apps",
            "main@sha1:ok",
            Readiness::True,
        )));
    wait_state(&fleet.state, "the healthy agent's delta", |s| {
        s.objects("production", None).is_some_and(|o| o.len() == 1)
    })
    .await;
    let log = support::logs();
    assert!(
        log.contains("closing agent connection"),
        "reasons are logged"
    );
    fleet.stop().await;
    support::assert_no_secret_logged(&pki.secrets);
}

#[actix_web::test]
async fn an_agent_that_stops_heartbeating_is_marked_disconnected() {
    let mut pki = Pki::new("silent");
    let staging = pki.add_cluster("staging").await;
    let mut config = pki.serve_config(0, 0);
    config.heartbeat = Duration::from_secs(1);
    config.missed_heartbeats = 1;
    let fleet = fleet::server::start(config, pki.registry.clone())
        .await
        .expect("fleet");
    let mut socket = connect(&pki, &fleet.agent_url(), &staging)
        .await
        .expect("connect");
    greet(&mut socket).await;
    wait_state(&fleet.state, "staging connected", |s| {
        s.cluster("staging")
            .is_some_and(|c| c.state == fleet::server::ConnectionState::Connected)
    })
    .await;
    // Say nothing more: the fleet gives up after the missed heartbeat.
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, 4008, "{reason}");
    wait_state(&fleet.state, "staging disconnected", |s| {
        s.cluster("staging")
            .is_some_and(|c| c.state == fleet::server::ConnectionState::Disconnected)
    })
    .await;
    fleet.stop().await;
}
