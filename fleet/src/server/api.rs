//! The admin HTTP API (JSON): clusters, their objects, the fleet-wide matrix, commands, live
//! changes as server-sent events; plus `/metrics` and `/healthz`.
//!
//! # Authentication
//! Every `/api` route takes an [`Admin`]: a verified admin client certificate, or
//! `Authorization: Bearer <token>`. A cluster's certificate is refused (403) even though it
//! verified: agents report status, they do not administer the fleet.

use std::collections::BTreeMap;
use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures::StreamExt;
use proto::pki::Identity;
use proto::{Ack, CommandAction, ObjectRef, ObjectStatus, Readiness};
use serde::{Deserialize, Serialize};

use super::fleet_actor::{RelayCommand, RelayError};
use super::state::ClusterView;
use super::{PeerCertificate, ServerContext};

/// How long the API waits for an agent to acknowledge a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// An API error, as JSON `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credential.
    #[error("authentication required: an admin client certificate or a bearer token")]
    Unauthenticated,
    /// A credential that does not grant API access.
    #[error("{0}")]
    Forbidden(String),
    /// No such cluster or object.
    #[error("{0}")]
    NotFound(String),
    /// A request the API cannot carry out as asked.
    #[error("{0}")]
    BadRequest(String),
    /// The agent is not connected, or went away before answering.
    #[error("{0}")]
    Unavailable(String),
    /// The agent did not answer in time.
    #[error("the agent did not acknowledge the command within {}s", COMMAND_TIMEOUT.as_secs())]
    Timeout,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthenticated) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// SHA-256, so the token is compared as digests of equal length.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An authenticated administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin's name (from the certificate), or `token`.
    pub name: String,
}

fn authenticate(req: &HttpRequest) -> Result<Admin, ApiError> {
    if let Some(peer) = req.conn_data::<PeerCertificate>() {
        return match &peer.identity {
            Identity::Admin(name) => Ok(Admin { name: name.clone() }),
            Identity::Cluster(name) => {
                tracing::warn!(cluster = %name, path = %req.path(), "agent certificate refused on the admin API");
                Err(ApiError::Forbidden(format!(
                    "cluster certificates ({name}) cannot call the admin API"
                )))
            }
        };
    }
    let ctx = req
        .app_data::<web::Data<ServerContext>>()
        .ok_or(ApiError::Unauthenticated)?;
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthenticated)?;
    match &ctx.token_digest {
        Some(expected) if constant_time_eq(expected, &digest(presented.trim().as_bytes())) => {
            Ok(Admin {
                name: "token".into(),
            })
        }
        // The presented token is never logged.
        _ => Err(ApiError::Forbidden("invalid bearer token".into())),
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// Mounts the API routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(console_page))
        .route("/console.js", web::get().to(console_script))
        .route("/console.css", web::get().to(console_style))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/api/v1/clusters", web::get().to(list_clusters))
        .route("/api/v1/clusters/{cluster}", web::get().to(get_cluster))
        .route(
            "/api/v1/clusters/{cluster}/objects",
            web::get().to(cluster_objects),
        )
        .route("/api/v1/objects", web::get().to(all_objects))
        .route("/api/v1/matrix", web::get().to(matrix))
        .route(
            "/api/v1/clusters/{cluster}/objects/{kind}/{namespace}/{name}/{action}",
            web::post().to(command),
        )
        .route("/api/v1/events", web::get().to(events));
}

/// The console's files carry no data; the page fetches everything with the token from its
/// URL fragment, so they are served without authentication.
fn console_file(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", "default-src 'self'"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

async fn console_page() -> HttpResponse {
    console_file(
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    )
}

async fn console_script() -> HttpResponse {
    console_file(
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    )
}

async fn console_style() -> HttpResponse {
    console_file(
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    )
}

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn metrics(ctx: web::Data<ServerContext>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(ctx.metrics.render(&ctx.state))
}

async fn list_clusters(_: Admin, ctx: web::Data<ServerContext>) -> HttpResponse {
    HttpResponse::Ok().json(ctx.state.clusters())
}

/// One cluster with its objects.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDetail {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: ClusterView,
    /// Its objects.
    pub items: Vec<ObjectStatus>,
}

async fn get_cluster(
    _: Admin,
    ctx: web::Data<ServerContext>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let cluster = ctx
        .state
        .cluster(&name)
        .ok_or_else(|| ApiError::NotFound(format!("cluster {name} not found")))?;
    let items = ctx.state.objects(&name, None).unwrap_or_default();
    Ok(HttpResponse::Ok().json(ClusterDetail { cluster, items }))
}

/// `?kind=` filter.
#[derive(Debug, Deserialize)]
pub struct KindQuery {
    /// Only objects of this kind (case-insensitive).
    pub kind: Option<String>,
}

async fn cluster_objects(
    _: Admin,
    ctx: web::Data<ServerContext>,
    path: web::Path<String>,
    query: web::Query<KindQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let items = ctx
        .state
        .objects(&name, query.kind.as_deref())
        .ok_or_else(|| ApiError::NotFound(format!("cluster {name} not found")))?;
    Ok(HttpResponse::Ok().json(items))
}

/// An object of some cluster, in fleet-wide listings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterObject {
    /// The cluster.
    pub cluster: String,
    /// The object's status.
    #[serde(flatten)]
    pub status: ObjectStatus,
}

async fn all_objects(
    _: Admin,
    ctx: web::Data<ServerContext>,
    query: web::Query<KindQuery>,
) -> HttpResponse {
    let items: Vec<ClusterObject> = ctx
        .state
        .all_objects(query.kind.as_deref())
        .into_iter()
        .map(|(cluster, status)| ClusterObject { cluster, status })
        .collect();
    HttpResponse::Ok().json(items)
}

/// One cell of the matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixCell {
    /// The revision on that cluster.
    pub revision: Option<String>,
    /// Ready there.
    pub ready: Readiness,
    /// Suspended there.
    pub suspended: bool,
}

/// One object across clusters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRow {
    /// The object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// By cluster name; clusters without the object are absent.
    pub clusters: BTreeMap<String, MatrixCell>,
}

/// Objects × clusters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    /// Every cluster (the columns).
    pub clusters: Vec<String>,
    /// Every object (the rows).
    pub rows: Vec<MatrixRow>,
}

async fn matrix(
    _: Admin,
    ctx: web::Data<ServerContext>,
    query: web::Query<KindQuery>,
) -> HttpResponse {
    let clusters = ctx.state.clusters().into_iter().map(|c| c.name).collect();
    let mut rows: BTreeMap<ObjectRef, MatrixRow> = BTreeMap::new();
    for (cluster, status) in ctx.state.all_objects(query.kind.as_deref()) {
        let row = rows
            .entry(status.object.clone())
            .or_insert_with(|| MatrixRow {
                object: status.object.clone(),
                clusters: BTreeMap::new(),
            });
        row.clusters.insert(
            cluster,
            MatrixCell {
                revision: status.revision,
                ready: status.ready,
                suspended: status.suspended,
            },
        );
    }
    HttpResponse::Ok().json(Matrix {
        clusters,
        rows: rows.into_values().collect(),
    })
}

/// The kinds commands can address, by the names the URL may use.
fn canonical_kind(kind: &str) -> Option<&'static str> {
    const KINDS: [&str; 5] = [
        "Kustomization",
        "GitRepository",
        "HelmRelease",
        "HelmRepository",
        "OCIRepository",
    ];
    KINDS
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(kind) || format!("{k}s").eq_ignore_ascii_case(kind))
}

/// `?withSource=true` on a reconcile.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandQuery {
    /// Reconcile the object's source first.
    #[serde(default)]
    pub with_source: bool,
}

async fn command(
    admin: Admin,
    ctx: web::Data<ServerContext>,
    path: web::Path<(String, String, String, String, String)>,
    query: web::Query<CommandQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cluster, kind, namespace, name, action) = path.into_inner();
    let action = match action.as_str() {
        "reconcile" => CommandAction::ReconcileNow,
        "suspend" => CommandAction::Suspend,
        "resume" => CommandAction::Resume,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown action {other:?}: reconcile, suspend or resume"
            )));
        }
    };
    let kind = canonical_kind(&kind)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown kind {kind:?}")))?;
    let object = ObjectRef {
        kind: kind.to_string(),
        namespace,
        name,
    };
    tracing::info!(admin = %admin.name, %cluster, %object, %action, "command requested");
    let reply = ctx
        .fleet
        .send(RelayCommand {
            cluster,
            action,
            object,
            with_source: query.with_source,
        })
        .await
        .map_err(|_| ApiError::Unavailable("the fleet is shutting down".into()))?
        .map_err(|e| match e {
            RelayError::UnknownCluster(_) => ApiError::NotFound(e.to_string()),
            RelayError::NotConnected(_) => ApiError::Unavailable(e.to_string()),
        })?;
    let ack: Ack = tokio::time::timeout(COMMAND_TIMEOUT, reply)
        .await
        .map_err(|_| ApiError::Timeout)?
        .map_err(|_| ApiError::Unavailable("the agent disconnected before acknowledging".into()))?;
    let status = if ack.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok(HttpResponse::build(status).json(ack))
}

async fn events(_: Admin, ctx: web::Data<ServerContext>) -> HttpResponse {
    let receiver = ctx.state.subscribe();
    // The current state first, so a client never misses what happened before it subscribed.
    let initial: Vec<Bytes> = ctx
        .state
        .clusters()
        .into_iter()
        .map(|c| sse("cluster", &super::state::FleetEvent::Cluster(c)))
        .collect();
    let live = futures::stream::unfold(receiver, |mut rx| async move {
        match rx.recv().await {
            Ok(event) => Some((sse(event.name(), &event), rx)),
            // A slow client lost events; tell it to refetch rather than show stale data.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((
                Bytes::from(format!("event: resync\ndata: {{\"lost\":{n}}}\n\n")),
                rx,
            )),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    let stream = futures::stream::iter(initial)
        .chain(live)
        .map(Ok::<_, actix_web::Error>);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream)
}

fn sse(name: &str, event: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_in_urls_are_matched_loosely_but_only_known_ones() {
        assert_eq!(canonical_kind("kustomization"), Some("Kustomization"));
        assert_eq!(canonical_kind("kustomizations"), Some("Kustomization"));
        assert_eq!(canonical_kind("GitRepository"), Some("GitRepository"));
        assert_eq!(canonical_kind("Secret"), None);
    }

    #[test]
    fn token_comparison_needs_the_exact_token() {
        let expected = digest(b"s3cret");
        assert!(constant_time_eq(&expected, &digest(b"s3cret")));
        assert!(!constant_time_eq(&expected, &digest(b"s3cre")));
    }
}
