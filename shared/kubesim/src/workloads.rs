//! Simulated controllers for workloads: Deployments, StatefulSets, DaemonSets, ReplicaSets and
//! Jobs report progress at once and readiness (or failure) after the ready delay, with the
//! status shapes, reasons and messages of kube-controller-manager. Services get addresses.
//!
//! The annotation `kubesim.flotilla.io/fail: "true"` makes a workload fail as Kubernetes reports
//! it: Deployments get `Progressing=False` with `ProgressDeadlineExceeded`, Jobs
//! `Failed` with `BackoffLimitExceeded`, the others stay unready.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::meta::now;
use crate::sim::Sim;
use crate::ssa::{self, Scope};
use crate::store::{Event, EventType, Key, State};

/// The annotation that makes a simulated workload fail.
pub const FAIL_ANNOTATION: &str = "kubesim.flotilla.io/fail";

const WORKLOADS: [(&str, &str); 7] = [
    ("", "pods"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
];

/// Gives a new Service its ClusterIP (from 10.96.0.0/12), node ports and defaults.
pub fn allocate_service(sim: &Sim, svc: &mut Value) {
    let spec = svc.get("spec").cloned().unwrap_or(json!({}));
    let mut spec = if spec.is_object() { spec } else { json!({}) };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec["type"] = json!(ty);
    if ty != "ExternalName" {
        let ip = match spec.get("clusterIP").and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => {
                let n = sim.next_ip.fetch_add(1, Ordering::Relaxed);
                format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
            }
        };
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        spec["internalTrafficPolicy"] = json!(
            spec.get("internalTrafficPolicy")
                .cloned()
                .unwrap_or(json!("Cluster"))
        );
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none()
                && let Some(port) = p.get("port").cloned()
            {
                p["targetPort"] = port;
            }
            if (ty == "NodePort" || ty == "LoadBalancer") && p.get("nodePort").is_none() {
                p["nodePort"] =
                    json!(30000 + sim.next_node_port.fetch_add(1, Ordering::Relaxed) % 2768);
            }
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec["externalTrafficPolicy"] = json!(
            spec.get("externalTrafficPolicy")
                .cloned()
                .unwrap_or(json!("Cluster"))
        );
    }
    svc["spec"] = spec;
    svc["status"] = json!({"loadBalancer": {}});
}

/// A pod-template-hash-like suffix, stable for a template.
fn template_hash(v: &Value) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (0..10)
        .map(|i| CHARS[((h >> (i * 6)) % CHARS.len() as u64) as usize] as char)
        .collect()
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn failing(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(FAIL_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

fn cond(ty: &str, status: &str, reason: &str, message: &str, old: &Value) -> Value {
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        });
    let t = now();
    let since = match prev {
        Some(p) if p.get("status").and_then(Value::as_str) == Some(status) => {
            p.get("lastTransitionTime").cloned().unwrap_or(json!(t))
        }
        _ => json!(t),
    };
    json!({"type": ty, "status": status, "lastUpdateTime": t, "lastTransitionTime": since, "reason": reason, "message": message})
}

/// The status a workload controller writes; `ready` once the delay has passed.
fn status_for(resource: &str, obj: &Value, ready: bool) -> Value {
    let n = replicas(obj);
    let g = generation(obj);
    let fail = failing(obj);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let hash = template_hash(obj.pointer("/spec/template").unwrap_or(&Value::Null));
    let up = ready && !fail;
    match resource {
        "deployments" => {
            let rs = format!("{name}-{hash}");
            let mut s = json!({"observedGeneration": g, "replicas": n, "updatedReplicas": n});
            let available = if up || n == 0 { n } else { 0 };
            if available > 0 {
                s["readyReplicas"] = json!(available);
                s["availableReplicas"] = json!(available);
            }
            if n - available > 0 {
                s["unavailableReplicas"] = json!(n - available);
            }
            let avail = if available == n {
                cond(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    obj,
                )
            } else {
                cond(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    obj,
                )
            };
            let progressing = if ready && fail {
                cond(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &format!("ReplicaSet \"{rs}\" has timed out progressing."),
                    obj,
                )
            } else if available == n {
                cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs}\" has successfully progressed."),
                    obj,
                )
            } else {
                cond(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs}\" is progressing."),
                    obj,
                )
            };
            s["conditions"] = json!([avail, progressing]);
            s
        }
        "statefulsets" => {
            let rev = format!("{name}-{hash}");
            let r = if up { n } else { 0 };
            let mut s = json!({"observedGeneration": g, "replicas": n, "currentReplicas": n, "updatedReplicas": n, "currentRevision": rev, "updateRevision": rev, "collisionCount": 0, "availableReplicas": r});
            if r > 0 {
                s["readyReplicas"] = json!(r);
            }
            s
        }
        "daemonsets" => {
            let r = i64::from(up);
            let mut s = json!({"observedGeneration": g, "desiredNumberScheduled": 1, "currentNumberScheduled": 1, "updatedNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": r});
            if r > 0 {
                s["numberAvailable"] = json!(r);
            } else {
                s["numberUnavailable"] = json!(1);
            }
            s
        }
        "replicasets" => {
            let r = if up { n } else { 0 };
            let mut s = json!({"observedGeneration": g, "replicas": n, "fullyLabeledReplicas": n});
            if r > 0 {
                s["readyReplicas"] = json!(r);
                s["availableReplicas"] = json!(r);
            }
            s
        }
        "pods" => {
            let t = now();
            let start = obj
                .pointer("/status/startTime")
                .cloned()
                .unwrap_or(json!(t));
            let cond = |ty: &str, ok: bool| {
                let mut c = json!({"type": ty, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": t});
                if !ok {
                    c["reason"] = json!("ContainersNotReady");
                }
                c
            };
            if !ready {
                return json!({"phase": "Pending", "conditions": [cond("PodScheduled", true)], "qosClass": "BestEffort"});
            }
            let statuses: Vec<Value> = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            let state = if up {
                                json!({"running": {"startedAt": start}})
                            } else {
                                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}})
                            };
                            json!({"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": up, "started": up,
                                "restartCount": if up { 0 } else { 5 }, "state": state})
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({"phase": "Running", "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "startTime": start, "qosClass": "BestEffort",
                "conditions": [cond("PodReadyToStartContainers", true), cond("Initialized", true), cond("Ready", up), cond("ContainersReady", up), cond("PodScheduled", true)],
                "containerStatuses": statuses})
        }
        "persistentvolumeclaims" => {
            if !ready || fail {
                return json!({"phase": "Pending"});
            }
            json!({"phase": "Bound", "accessModes": obj.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "capacity": obj.pointer("/spec/resources/requests").cloned().unwrap_or(json!({}))})
        }
        "jobs" => {
            let start = obj
                .pointer("/status/startTime")
                .cloned()
                .unwrap_or(json!(now()));
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if !ready {
                let parallelism = obj
                    .pointer("/spec/parallelism")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                return json!({"startTime": start, "active": parallelism, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}});
            }
            if fail {
                let limit = obj
                    .pointer("/spec/backoffLimit")
                    .and_then(Value::as_i64)
                    .unwrap_or(6);
                let msg = "Job has reached the specified backoff limit";
                return json!({"startTime": start, "failed": limit + 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
                    "conditions": [cond("FailureTarget", "True", "BackoffLimitExceeded", msg, obj), cond("Failed", "True", "BackoffLimitExceeded", msg, obj)]});
            }
            let msg = "Reached expected number of succeeded pods";
            json!({"startTime": start, "completionTime": now(), "succeeded": completions, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
                "conditions": [cond("SuccessCriteriaMet", "True", "CompletionsReached", msg, obj), cond("Complete", "True", "CompletionsReached", msg, obj)]})
        }
        _ => Value::Null,
    }
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(m) = c.as_object_mut() {
                m.shift_remove("lastUpdateTime");
                m.shift_remove("lastTransitionTime");
            }
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("completionTime");
    }
    v
}

/// Writes a workload's status as kube-controller-manager (managedFields on `/status`).
fn write_status(sim: &Sim, st: &mut State, key: &Key, ready: bool) {
    let Some(obj) = st.get(key) else { return };
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    // A completed or failed Job stays so.
    if key.resource == "jobs" && obj.pointer("/status/conditions").is_some() {
        return;
    }
    let status = status_for(&key.resource, &obj, ready);
    if obj.get("status").map(strip_times) == Some(strip_times(&status)) {
        return;
    }
    let Some(rt) = sim.registry.by_resource(&key.group, &key.resource) else {
        return;
    };
    let mut new = (*obj).clone();
    new["status"] = status;
    // The scheduler binds pods to the one node.
    if key.resource == "pods" && new.pointer("/spec/nodeName").is_none() {
        crate::api::set_in(&mut new, &["spec", "nodeName"], json!("kubesim"));
    }
    let version = rt.storage_version().to_string();
    ssa::track_update(
        &Scope {
            rt: &rt,
            version: &version,
            subresource: "status",
        },
        Some(&obj),
        &mut new,
        if key.resource == "pods" {
            "kubelet"
        } else {
            "kube-controller-manager"
        },
    );
    if let Err(e) = st.put(key.clone(), new) {
        tracing::warn!(error = %e.message, "kubesim: workload status write failed");
    }
}

/// Reacts to a workload change: progress now, readiness after the delay.
pub fn on_event(sim: &Arc<Sim>, st: &mut State, ev: &Event) {
    if ev.kind == EventType::Deleted
        || !WORKLOADS.contains(&(ev.key.group.as_str(), ev.key.resource.as_str()))
    {
        return;
    }
    let obj = &ev.object;
    let observed = obj
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let g = generation(obj);
    let started = if ev.key.resource == "jobs" {
        obj.pointer("/status/startTime").is_some()
    } else if ev.key.group.is_empty() {
        obj.pointer("/status/phase").is_some_and(|p| p != "Pending")
    } else {
        observed == Some(g)
    };
    let annotation_changed = ev.prev.as_ref().is_some_and(|p| failing(p) != failing(obj));
    if started && !annotation_changed {
        return;
    }
    write_status(sim, st, &ev.key, false);
    let sim = sim.clone();
    let key = ev.key.clone();
    let delay = sim.ready_delay;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut st = sim.store.lock();
        if st.get(&key).is_some_and(|o| generation(&o) == g) {
            write_status(&sim, &mut st, &key, true);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_deployment_reports_progress_deadline_exceeded() {
        let d = json!({"metadata": {"name": "web", "generation": 2, "annotations": {FAIL_ANNOTATION: "true"}}, "spec": {"replicas": 2}});
        let s = status_for("deployments", &d, true);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][0]["status"], "False");
    }

    #[test]
    fn a_ready_deployment_is_available() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let s = status_for("deployments", &d, true);
        assert_eq!(s["availableReplicas"], 3);
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["status"], "True");
    }
}
