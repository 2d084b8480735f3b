//! Defaulting of built-in types, as kube-apiserver applies its `SetDefaults_*` functions to
//! every object it decodes (so `kubectl get -o yaml` shows `strategy`, `dnsPolicy`,
//! `imagePullPolicy` and the rest, and SSA removal of a defaulted field re-defaults it).

use serde_json::{Map, Value, json};

fn set(obj: &mut Map<String, Value>, key: &str, v: Value) {
    if !obj.contains_key(key) {
        obj.insert(key.into(), v);
    }
}

/// A workload's update strategy, defaulted field by field as the API server does: an empty
/// type is RollingUpdate, whose parameters default one by one (`strategy: {}` from kubectl
/// create must end as a full RollingUpdate).
fn rolling_update(spec: &mut Map<String, Value>, field: &str, parameters: &[(&str, Value)]) {
    let Some(strategy) = spec
        .entry(field)
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    set(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) != Some("RollingUpdate") {
        return;
    }
    let Some(rolling) = strategy
        .entry("rollingUpdate")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for (name, value) in parameters {
        set(rolling, name, value.clone());
    }
}

fn pull_policy(image: &str) -> &'static str {
    // The tag follows the last ':' after the last '/'; no tag or `latest` means Always.
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split('@').next().unwrap_or(last);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    set(m, "terminationMessagePath", json!("/dev/termination-log"));
    set(m, "terminationMessagePolicy", json!("File"));
    let policy = pull_policy(m.get("image").and_then(Value::as_str).unwrap_or_default());
    set(m, "imagePullPolicy", json!(policy));
    set(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set(p, "protocol", json!("TCP"));
        }
    }
}

/// Defaults of a PodSpec.
pub fn pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set(m, "restartPolicy", json!("Always"));
    set(m, "terminationGracePeriodSeconds", json!(30));
    set(m, "dnsPolicy", json!("ClusterFirst"));
    set(m, "securityContext", json!({}));
    set(m, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(container);
        }
    }
}

fn template(spec: &mut Map<String, Value>) {
    if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut) {
        if let Some(ps) = t.get_mut("spec") {
            pod_spec(ps);
        }
        // An empty template metadata still carries creationTimestamp: null in real output.
        if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
            set(meta, "creationTimestamp", Value::Null);
        }
    }
}

/// Applies the defaults of a built-in type to an object about to be stored.
pub fn apply(group: &str, resource: &str, obj: &mut Value) {
    if let ("", "secrets") = (group, resource)
        && let Some(m) = obj.as_object_mut()
    {
        if m.get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            m.insert("type".into(), json!("Opaque"));
        }
        // stringData is write-only: merged into data (overwriting), never stored or returned.
        if let Some(Value::Object(sd)) = m.shift_remove("stringData") {
            use base64::Engine as _;
            let data = m.entry("data").or_insert_with(|| json!({}));
            if !data.is_object() {
                *data = json!({});
            }
            if let Value::Object(d) = data {
                for (k, v) in sd {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    d.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(text)),
                    );
                }
            }
        }
        return;
    }
    if let ("", "pods") = (group, resource) {
        if let Some(s) = obj.get_mut("spec") {
            pod_spec(s);
        }
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    match (group, resource) {
        ("apps", "deployments") => {
            set(spec, "replicas", json!(1));
            rolling_update(
                spec,
                "strategy",
                &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
            );
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "progressDeadlineSeconds", json!(600));
            template(spec);
        }
        ("apps", "statefulsets") => {
            set(spec, "replicas", json!(1));
            set(spec, "podManagementPolicy", json!("OrderedReady"));
            rolling_update(spec, "updateStrategy", &[("partition", json!(0))]);
            set(spec, "revisionHistoryLimit", json!(10));
            set(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            template(spec);
        }
        ("apps", "daemonsets") => {
            rolling_update(
                spec,
                "updateStrategy",
                &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
            );
            set(spec, "revisionHistoryLimit", json!(10));
            template(spec);
        }
        ("apps", "replicasets") => {
            set(spec, "replicas", json!(1));
            template(spec);
        }
        ("batch", "jobs") => {
            set(spec, "parallelism", json!(1));
            set(spec, "completions", json!(1));
            set(spec, "backoffLimit", json!(6));
            set(spec, "completionMode", json!("NonIndexed"));
            set(spec, "suspend", json!(false));
            set(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            template(spec);
        }
        ("batch", "cronjobs") => {
            set(spec, "concurrencyPolicy", json!("Allow"));
            set(spec, "suspend", json!(false));
            set(spec, "successfulJobsHistoryLimit", json!(3));
            set(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(js) = spec
                .get_mut("jobTemplate")
                .and_then(|j| j.get_mut("spec"))
                .and_then(Value::as_object_mut)
            {
                template(js);
            }
        }
        ("", "persistentvolumeclaims") => set(spec, "volumeMode", json!("Filesystem")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"b": "hi", "a": "new"}});
        apply("", "secrets", &mut s);
        assert_eq!(
            s,
            json!({"data": {"a": "bmV3", "b": "aGk="}, "type": "Opaque"})
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(pull_policy("registry:5000/nginx:1.27"), "IfNotPresent");
        assert_eq!(pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn a_deployment_gets_the_apiserver_defaults() {
        let mut d = json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 80}]}]}}}});
        apply("apps", "deployments", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }
}
