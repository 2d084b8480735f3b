//! Watches: a chunked stream of JSON event lines, resumable from any resourceVersion still in
//! the history (older ones get an ERROR event with a 410 Expired Status, as from the watch
//! cache), with bookmarks, `sendInitialEvents`, `timeoutSeconds` and selector transitions
//! (an object that stops matching is reported DELETED, one that starts matching ADDED).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::api::{Params, Selection, Target, served};
use crate::sim::Sim;
use crate::status::{ApiError, ApiResult};
use crate::store::{Event, EventType};
use crate::table;

struct Watch {
    t: Target,
    sel: Selection,
    table: bool,
    metadata_only: bool,
    include: String,
    headers_sent: bool,
}

impl Watch {
    fn wanted(&self, ev: &Event) -> Option<&'static str> {
        let k = &ev.key;
        if k.group != self.t.rt.storage_group() || k.resource != self.t.rt.resource {
            return None;
        }
        if self
            .t
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != k.namespace)
            || self.t.name.as_ref().is_some_and(|n| *n != k.name)
        {
            return None;
        }
        let now = self.sel.matches(&ev.object);
        match ev.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => match (
                ev.prev.as_ref().map(|p| self.sel.matches(p)).unwrap_or(now),
                now,
            ) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }

    fn line(&mut self, ty: &str, obj: &Value) -> Bytes {
        let mut o = served(obj, &self.t);
        if self.metadata_only && !self.table {
            o = crate::api::partial(&o);
        }
        if self.table {
            let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
            o = table::table(
                &self.t.rt,
                &self.t.version,
                &[o],
                meta,
                &self.include,
                !self.headers_sent,
            );
            self.headers_sent = true;
        }
        let mut s = json!({"type": ty, "object": o}).to_string();
        s.push('\n');
        Bytes::from(s)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let mut s = json!({"type": "BOOKMARK", "object": {"kind": self.t.rt.kind, "apiVersion": self.t.api_version_string(), "metadata": meta}}).to_string();
        s.push('\n');
        Bytes::from(s)
    }
}

impl Target {
    fn api_version_string(&self) -> String {
        self.rt.api_version(&self.version)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut s = json!({"type": "ERROR", "object": e.to_status()}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Starts a watch; the receiver yields the body's chunks.
pub fn start(sim: Arc<Sim>, t: Target, p: &Params) -> ApiResult<mpsc::Receiver<Bytes>> {
    let q = |k: &str| p.query.get(k).map(String::as_str);
    let sel = Selection::parse(&t, p)?;
    let rv_param = q("resourceVersion").unwrap_or("");
    let send_initial = q("sendInitialEvents") == Some("true");
    let bookmarks = matches!(q("allowWatchBookmarks"), Some("true") | Some("1"));
    let since: Option<u64> = match rv_param {
        "" | "0" => None,
        s => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    let faults = sim.faults();
    // kube-apiserver spreads watch lifetimes over [minRequestTimeout, 2*minRequestTimeout).
    let mut timeout = match q("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()) {
        Some(s) => Duration::from_secs(s),
        None => Duration::from_secs(1800 + (sim.sample() * 1800.0) as u64),
    };
    if let Some(expiry) = faults.watch_expiry {
        timeout = timeout.min(expiry);
    }
    let mut w = Watch {
        t,
        sel,
        table: p.table,
        metadata_only: p.metadata_only,
        include: q("includeObject").unwrap_or("Metadata").to_string(),
        headers_sent: false,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let (past, mut brx, start_rv) = {
        let st = sim.store.lock();
        let from = since.unwrap_or(st.rv());
        match st.watch_from(from) {
            Err(oldest) => {
                let e = ApiError::expired(format!("too old resource version: {from} ({oldest})"));
                first.push(error_line(&e));
                drop(st);
                tokio::spawn(async move {
                    for b in first {
                        let _ = tx.send(b).await;
                    }
                });
                return Ok(rx);
            }
            Ok((past, brx)) => {
                if since.is_none() || send_initial {
                    for (key, obj) in st.list(
                        w.t.rt.storage_group(),
                        &w.t.rt.resource,
                        w.t.namespace.as_deref(),
                    ) {
                        if w.t.name.as_ref().is_some_and(|n| *n != key.name) || !w.sel.matches(&obj)
                        {
                            continue;
                        }
                        first.push(w.line("ADDED", &obj));
                    }
                    if send_initial {
                        first.push(w.bookmark(st.rv(), true));
                    }
                }
                (past, brx, st.rv())
            }
        }
    };
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        // Nothing at or before the requested version is sent again (a version ahead of the
        // store's is waited for, as kube-apiserver's watch cache does).
        let mut last_rv = since.unwrap_or(start_rv);
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        for ev in past {
            last_rv = last_rv.max(ev.rv);
            if let Some(ty) = w.wanted(&ev)
                && tx.send(w.line(ty, &ev.object)).await.is_err()
            {
                return;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.reset();
        loop {
            tokio::select! {
                r = brx.recv() => match r {
                    Ok(ev) => {
                        if ev.rv <= last_rv && since.is_some() { continue; }
                        last_rv = last_rv.max(ev.rv);
                        if let Some(ty) = w.wanted(&ev)
                            && tx.send(w.line(ty, &ev.object)).await.is_err() {
                            return;
                        }
                    }
                    // A watcher too slow for the event rate is closed; the client resumes.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(w.bookmark(last_rv, false)).await.is_err() { return; }
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}
