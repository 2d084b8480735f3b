//! Flux-compatible metrics and the agent's health endpoints.
//!
//! The metric families, names, help texts, labels and buckets are Flux's
//! (`fluxcd/pkg/runtime/metrics`), so dashboards and alerts written for Flux work unchanged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry, TextEncoder};

/// Why the metrics could not be set up or served.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A metric family could not be registered (a name clash: a bug).
    #[error("registering metric: {0}")]
    Register(#[from] prometheus::Error),
    /// The HTTP listener could not be bound.
    #[error("binding the metrics listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The condition statuses Flux records, one gauge series each, so that a query for
/// `status="True"` sees 0 when the condition is False rather than a stale 1.
const CONDITION_STATUSES: [&str; 4] = ["True", "False", "Unknown", "Deleted"];

/// The agent's metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramVec,
    reconcile_condition: GaugeVec,
    suspend_status: GaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// `count` buckets from `min` to `max` growing by a constant factor, as Prometheus' Go
/// client's `ExponentialBucketsRange`.
fn exponential_buckets_range(min: f64, max: f64, count: usize) -> Vec<f64> {
    let factor = (max / min).powf(1.0 / (count as f64 - 1.0));
    (0..count).map(|i| min * factor.powi(i as i32)).collect()
}

impl Metrics {
    pub fn new() -> Result<Self, TelemetryError> {
        let registry = Registry::new();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "gotk_reconcile_duration_seconds",
                "The duration in seconds of a GitOps Toolkit resource reconciliation.",
            )
            .buckets(exponential_buckets_range(10e-3, 1800.0, 10)),
            &["kind", "name", "namespace"],
        )?;
        let reconcile_condition = GaugeVec::new(
            Opts::new(
                "gotk_reconcile_condition",
                "The current condition status of a GitOps Toolkit resource reconciliation.",
            ),
            &["kind", "name", "namespace", "type", "status"],
        )?;
        let suspend_status = GaugeVec::new(
            Opts::new(
                "gotk_suspend_status",
                "The current suspend status of a GitOps Toolkit resource.",
            ),
            &["kind", "name", "namespace"],
        )?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(reconcile_condition.clone()))?;
        registry.register(Box::new(suspend_status.clone()))?;
        Ok(Self {
            registry,
            reconcile_duration,
            reconcile_condition,
            suspend_status,
        })
    }

    /// Records how long one reconcile of an object took.
    pub fn record_duration(&self, kind: &str, namespace: &str, name: &str, took: Duration) {
        self.reconcile_duration
            .with_label_values(&[kind, name, namespace])
            .observe(took.as_secs_f64());
    }

    /// Records an object's condition; `status` is `True`, `False`, `Unknown`, or `Deleted`
    /// once the object is gone.
    pub fn record_condition(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        type_: &str,
        status: &str,
    ) {
        for candidate in CONDITION_STATUSES {
            let value = if candidate == status { 1.0 } else { 0.0 };
            self.reconcile_condition
                .with_label_values(&[kind, name, namespace, type_, candidate])
                .set(value);
        }
    }

    pub fn record_suspend(&self, kind: &str, namespace: &str, name: &str, suspended: bool) {
        self.suspend_status
            .with_label_values(&[kind, name, namespace])
            .set(if suspended { 1.0 } else { 0.0 });
    }

    /// The registry, for other parts of the agent to add their own families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail but for a family with an invalid name, which
        // registration already refused.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// Whether the agent is ready (its watchers have synced); `/readyz` answers 503 until then.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the returned server is stopped.
pub fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
) -> Result<(actix_web::dev::Server, SocketAddr), TelemetryError> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(metrics.clone()))
            .app_data(web::Data::new(readiness.clone()))
            .route("/metrics", web::get().to(metrics_handler))
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
            .route("/readyz", web::get().to(readyz_handler))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .map_err(|source| TelemetryError::Bind { addr, source })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

async fn metrics_handler(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

async fn readyz_handler(readiness: web::Data<Readiness>) -> HttpResponse {
    if readiness.is_ready() {
        HttpResponse::Ok().body("ok")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_span_ten_milliseconds_to_half_an_hour_like_flux() {
        let buckets = exponential_buckets_range(10e-3, 1800.0, 10);
        assert_eq!(buckets.len(), 10);
        assert!((buckets[0] - 0.01).abs() < 1e-12);
        assert!((buckets[9] - 1800.0).abs() < 1e-6);
    }

    #[test]
    fn a_condition_sets_its_status_series_to_one_and_the_others_to_zero() {
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        metrics.record_condition("Kustomization", "flux-system", "apps", "Ready", "True");
        metrics.record_condition("Kustomization", "flux-system", "apps", "Ready", "False");
        let text = metrics.render();
        assert!(text.contains(
            r#"gotk_reconcile_condition{kind="Kustomization",name="apps",namespace="flux-system",status="False",type="Ready"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"gotk_reconcile_condition{kind="Kustomization",name="apps",namespace="flux-system",status="True",type="Ready"} 0"#
        ), "{text}");
    }

    #[actix_web::test]
    async fn endpoints_answer_over_http() {
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        metrics.record_duration(
            "GitRepository",
            "flux-system",
            "repo",
            Duration::from_millis(30),
        );
        let readiness = Readiness::default();
        let (server, addr) = serve(
            "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            metrics,
            readiness.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut response = String::new();
            stream
                .read_to_string(&mut response)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            response
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        readiness.set_ready();
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(
            get("/metrics")
                .await
                .contains("gotk_reconcile_duration_seconds_bucket")
        );
        handle.stop(false).await;
    }
}
