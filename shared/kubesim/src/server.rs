//! The HTTPS server: TLS with the generated CA, authentication (bearer token or client
//! certificate), fault injection, routing to discovery, OpenAPI and the resource verbs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::access_review;
use crate::api::{self, Params, Reply, Target};
use crate::discovery;
use crate::error::{Error, Result};
use crate::persist;
use crate::sim::{Config, Faults, Sim};
use crate::status::ApiError;
use crate::store::Store;
use crate::tls::{Pki, cert_user};

/// kube-apiserver's default request body limit (`--max-resource-write-bytes`, 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

type Body = BoxBody<Bytes, std::io::Error>;

/// Entry point: `Server::start(Config::default()).await?` serves on a random loopback port.
#[derive(Debug)]
pub struct Server;

/// A started server; dropping it stops it.
pub struct RunningServer {
    addr: SocketAddr,
    pki: Arc<Pki>,
    sim: Arc<Sim>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads or creates the store, generates credentials, binds and starts serving.
    pub async fn start(config: Config) -> Result<RunningServer> {
        // Another part of the process may have installed the provider already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let pki = Arc::new(match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Persist {
                    path: dir.clone(),
                    source,
                })?;
                Pki::load_or_generate(dir)?
            }
            None => Pki::generate()?,
        });
        let tls = pki.server_config()?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.addr.to_string(),
            source,
        })?;
        let store = match &config.data_dir {
            Some(dir) => {
                let rec = persist::open(dir)?;
                Store::new(rec.rv, rec.objects, Some(rec.log), config.watch_history)
            }
            None => Store::new(1, Default::default(), None, config.watch_history),
        };
        let sim = Arc::new(Sim::new(
            store,
            &config,
            addr.to_string(),
            pki.ca_pem.clone(),
        ));
        bootstrap(&sim);
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::controllers::run(sim.clone()));
        tasks.spawn(accept_loop(
            listener,
            TlsAcceptor::from(tls),
            sim.clone(),
            pki.clone(),
            stop_rx,
        ));
        Ok(RunningServer {
            addr,
            pki,
            sim,
            stop,
            tasks,
        })
    }
}

/// The namespaces every cluster starts with.
fn bootstrap(sim: &Sim) {
    let Some(rt) = sim.registry.lookup("", "v1", "namespaces") else {
        return;
    };
    let mut st = sim.store.lock();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if st
            .get(&crate::store::Key::new("", "namespaces", "", ns))
            .is_some()
        {
            continue;
        }
        let t = Target {
            rt: rt.clone(),
            version: "v1".into(),
            namespace: None,
            name: None,
            sub: None,
        };
        let mut obj =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if let Err(e) =
            api::create_object(sim, &mut st, &t, &mut obj, "kube-apiserver", false, None)
        {
            tracing::warn!(error = %e.message, "kubesim: creating namespace {ns}");
        }
    }
    // The `kubernetes` Service in default, pointing at this server.
    let port = sim
        .server_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(443);
    let svc_key = crate::store::Key::new("", "services", "default", "kubernetes");
    if st.get(&svc_key).is_none()
        && let Some(rt) = sim.registry.lookup("", "v1", "services")
    {
        let t = Target {
            rt,
            version: "v1".into(),
            namespace: Some("default".into()),
            name: None,
            sub: None,
        };
        let mut svc = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}});
        if let Err(e) =
            api::create_object(sim, &mut st, &t, &mut svc, "kube-apiserver", false, None)
        {
            tracing::warn!(error = %e.message, "kubesim: creating the kubernetes service");
        }
        if let Some(rt) = sim.registry.lookup("", "v1", "endpoints") {
            let t = Target {
                rt,
                version: "v1".into(),
                namespace: Some("default".into()),
                name: None,
                sub: None,
            };
            let mut ep = serde_json::json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]});
            if let Err(e) =
                api::create_object(sim, &mut st, &t, &mut ep, "kube-apiserver", false, None)
            {
                tracing::warn!(error = %e.message, "kubesim: creating the kubernetes endpoints");
            }
        }
    }
    // One Ready node, which DaemonSets are scheduled to.
    let node_key = crate::store::Key::new("", "nodes", "", "kubesim");
    if st.get(&node_key).is_none()
        && let Some(rt) = sim.registry.lookup("", "v1", "nodes")
    {
        let t = Target {
            rt,
            version: "v1".into(),
            namespace: None,
            name: None,
            sub: None,
        };
        let mut node = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kubesim", "labels": {
            "kubernetes.io/hostname": "kubesim", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", "node-role.kubernetes.io/control-plane": ""}}});
        match api::create_object(sim, &mut st, &t, &mut node, "kubelet", false, None) {
            Ok(mut created) => {
                let now = crate::meta::now();
                created["status"] = serde_json::json!({
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now, "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "kubesim"}],
                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                    "nodeInfo": {"kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0", "containerRuntimeVersion": "containerd://1.7.24",
                        "operatingSystem": "linux", "architecture": "amd64", "osImage": "kubesim", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
                });
                if let Err(e) = st.put(node_key, created) {
                    tracing::warn!(error = %e.message, "kubesim: node status");
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "kubesim: creating the node"),
        }
    }
}

impl RunningServer {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A kubeconfig (YAML) authenticating with the bearer token.
    pub fn kubeconfig(&self) -> String {
        self.pki.kubeconfig_token(&self.base_url())
    }

    /// A kubeconfig (YAML) authenticating with the client certificate.
    pub fn kubeconfig_client_cert(&self) -> String {
        self.pki.kubeconfig_client_cert(&self.base_url())
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.pki.token
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.sim.faults.write() {
            *f = faults;
        }
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        self.sim.store.lock().len()
    }

    /// Stops accepting, closes connections and controllers, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    sim: Arc<Sim>,
    pki: Arc<Pki>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((tcp, _)) = r else { continue };
                let (acceptor, sim, pki) = (acceptor.clone(), sim.clone(), pki.clone());
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let user = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| cert_user(c));
                    let svc = service_fn(move |req| handle(sim.clone(), pki.clone(), user.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), svc).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(code: u16, v: &Value, content_type: &str) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status(), "application/json");
    if let Some(s) = e.retry_after
        && let Ok(v) = s.to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a query string (`a=b&c=d`, percent and `+` encoded).
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

async fn handle(
    sim: Arc<Sim>,
    pki: Arc<Pki>,
    user: Option<String>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, std::io::Error> {
    let token_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == pki.token);
    if !token_ok && user.is_none() {
        return Ok(error_response(&ApiError::unauthorized()));
    }
    let faults = sim.faults();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if faults.reset_rate > 0.0 && sim.sample() < faults.reset_rate {
        // Failing the service makes hyper drop the connection without a response.
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "kubesim: injected connection reset",
        ));
    }
    if faults.throttle_rate > 0.0 && sim.sample() < faults.throttle_rate {
        return Ok(error_response(&ApiError::too_many_requests(
            faults.retry_after_secs.max(1),
        )));
    }
    if faults.error_rate > 0.0 && sim.sample() < faults.error_rate {
        return Ok(error_response(&ApiError::internal(
            "kubesim: injected failure",
        )));
    }
    Ok(route(sim, req).await.unwrap_or_else(|e| error_response(&e)))
}

fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|a| {
        a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2") && !a.contains("v=v2beta1")
    })
}

async fn read_body(body: Incoming) -> std::result::Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

async fn route(
    sim: Arc<Sim>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = parse_query(req.uri().query().unwrap_or_default());
    let header_str = |h: header::HeaderName| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header_str(header::ACCEPT);
    let content_type = header_str(header::CONTENT_TYPE);
    let user_agent = header_str(header::USER_AGENT);
    if !accept.is_empty()
        && !accept.contains("json")
        && !accept.contains("*/*")
        && !accept.contains("yaml")
    {
        return Err(ApiError::not_acceptable(&accept));
    }
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY)
    {
        return Err(ApiError::too_large(MAX_BODY));
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let types = sim.registry.all();
    let ok = |v: Value| Ok(json_response(200, &v, "application/json"));
    if method == Method::GET {
        match segs.as_slice() {
            ["version"] => return ok(discovery::version()),
            ["healthz"] | ["livez"] | ["readyz"] => {
                let mut r = Response::new(full("ok"));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                return Ok(r);
            }
            ["api"] if wants_aggregated(&accept) => {
                return Ok(json_response(
                    200,
                    &discovery::aggregated(&types, true),
                    discovery::AGGREGATED_V2,
                ));
            }
            ["apis"] if wants_aggregated(&accept) => {
                return Ok(json_response(
                    200,
                    &discovery::aggregated(&types, false),
                    discovery::AGGREGATED_V2,
                ));
            }
            ["api"] => return ok(discovery::api_versions(&sim.server_address)),
            ["apis"] => return ok(discovery::api_group_list(&types)),
            ["api", v] => {
                return discovery::resource_list(&types, "", v)
                    .map(|d| json_response(200, &d, "application/json"))
                    .ok_or_else(ApiError::no_route);
            }
            ["apis", g] => {
                return discovery::group(&types, g)
                    .map(|d| json_response(200, &d, "application/json"))
                    .ok_or_else(ApiError::no_route);
            }
            ["apis", g, v] => {
                return discovery::resource_list(&types, g, v)
                    .map(|d| json_response(200, &d, "application/json"))
                    .ok_or_else(ApiError::no_route);
            }
            ["openapi", "v3"] => {
                return ok(discovery::openapi_v3_index(&types, types.len() as u64));
            }
            ["openapi", "v3", "api", v] => {
                return discovery::openapi_v3_doc(&types, "", v)
                    .map(|d| json_response(200, &d, "application/json"))
                    .ok_or_else(ApiError::no_route);
            }
            ["openapi", "v3", "apis", g, v] => {
                return discovery::openapi_v3_doc(&types, g, v)
                    .map(|d| json_response(200, &d, "application/json"))
                    .ok_or_else(ApiError::no_route);
            }
            _ => {}
        }
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if let Some(resource) = rest
        .last()
        .filter(|r| access_review::is_review(group, version, r))
    {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let resource = resource.to_string();
        let body = read_body(req.into_body()).await?;
        let review = api::decode(&body, &content_type)?;
        return Ok(json_response(
            201,
            &access_review::answer(&resource, review)?,
            "application/json",
        ));
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, more @ ..]
            if sim
                .registry
                .lookup(group, version, r)
                .is_some_and(|t| t.namespaced) =>
        {
            (Some(ns.to_string()), {
                let mut v = vec![*r];
                v.extend_from_slice(more);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::no_route()),
    };
    let rt = sim
        .registry
        .lookup(group, version, resource)
        .ok_or_else(ApiError::no_route)?;
    if !rt.namespaced && namespace.is_some()
        || rt.namespaced && namespace.is_none() && name.is_some()
    {
        return Err(ApiError::no_route());
    }
    if let Some(s) = &sub {
        let known = (s == "status" && rt.status)
            || (s == "scale" && rt.scale)
            || (s == "finalize" && rt.resource == "namespaces" && rt.group.is_empty());
        if !known {
            return Err(ApiError::no_route());
        }
    }
    let t = Target {
        rt,
        version: version.to_string(),
        namespace,
        name,
        sub,
    };
    let params = Params {
        query,
        content_type: content_type.clone(),
        user_agent,
        table: accept.contains("as=Table"),
        metadata_only: accept.contains("as=PartialObjectMetadata"),
        warnings: Default::default(),
    };
    let is_watch = matches!(
        params.query.get("watch").map(String::as_str),
        Some("true") | Some("1")
    );
    if method == Method::GET && is_watch {
        let rx = crate::watch::start(sim.clone(), t, &params)?;
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache, private"),
        );
        return Ok(r);
    }
    let body = read_body(req.into_body()).await?;
    let reply = {
        let mut st = sim.store.lock();
        let reply = match (&method, t.name.is_some()) {
            (&Method::GET, true) => api::get(&st, &t, &params),
            (&Method::GET, false) => api::list(&st, &t, &params),
            (&Method::POST, false) if !(t.rt.namespaced && t.namespace.is_none()) => {
                api::create(&sim, &mut st, &t, &params, &body)
            }
            (&Method::PUT, true) => api::update(&mut st, &t, &params, &body),
            (&Method::PATCH, true) => api::patch(&sim, &mut st, &t, &params, &body),
            (&Method::DELETE, true) => api::delete(&mut st, &t, &params, &body),
            (&Method::DELETE, false) if t.sub.is_none() => {
                api::delete_collection(&mut st, &t, &params, &body)
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        };
        // A CRD reported Established is servable by the next request, not only once the
        // controllers have caught up.
        if method != Method::GET && t.rt.group == "apiextensions.k8s.io" {
            crate::controllers::rebuild_registry(&sim, &st);
        }
        reply
    }?;
    match reply {
        Reply::Json(code, v) => {
            let mut r = json_response(
                code,
                &v,
                if params.table && v.get("kind") == Some(&Value::String("Table".into())) {
                    "application/json;as=Table;v=v1;g=meta.k8s.io"
                } else {
                    "application/json"
                },
            );
            for w in params.warnings.borrow().iter() {
                // RFC 7234 warn-code 299 with the agent "-", as kube-apiserver sends them.
                let text = format!("299 - {}", serde_json::Value::String(w.clone()));
                if let Ok(h) = http::HeaderValue::from_str(&text) {
                    r.headers_mut().append(header::WARNING, h);
                }
            }
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_decoded() {
        let q = parse_query("labelSelector=app%3Dweb%2Cenv+in+%28a%29&watch=1&bad=%zz");
        assert_eq!(q["labelSelector"], "app=web,env in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["bad"], "%zz");
    }
}
