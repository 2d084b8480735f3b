//! Conformance: the real kubectl v1.32 against an in-process kubesim.

mod common;

use common::{APP, WIDGET, WIDGET_CRD, project_crds, start};

#[tokio::test(flavor = "multi_thread")]
async fn api_resources_lists_core_apps_and_crd_types() {
    let sim = start().await;
    let out = sim.ok(&["api-resources"]).await;
    for needle in [
        "deployments",
        "configmaps",
        "customresourcedefinitions",
        "horizontalpodautoscalers",
        "leases",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    sim.ok_in(&["apply", "-f", "-"], WIDGET_CRD).await;
    let out = sim.ok(&["api-resources", "--api-group=example.com"]).await;
    assert!(out.contains("widgets") && out.contains("wd"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_namespace_apply_get_yaml_and_reapply_unchanged() {
    let sim = start().await;
    assert!(
        sim.ok(&["create", "namespace", "demo"])
            .await
            .contains("namespace/demo created")
    );
    let out = sim.ok_in(&["apply", "-f", "-"], APP).await;
    assert!(
        out.contains("deployment.apps/web created")
            && out.contains("service/web created")
            && out.contains("configmap/settings created"),
        "{out}"
    );
    let out = sim.ok_in(&["apply", "-f", "-"], APP).await;
    assert!(
        out.contains("deployment.apps/web unchanged")
            && out.contains("configmap/settings unchanged"),
        "{out}"
    );
    let changed = APP.replace("color: blue", "color: green");
    assert!(
        sim.ok_in(&["apply", "-f", "-"], &changed)
            .await
            .contains("configmap/settings configured")
    );
    let yaml = sim
        .ok(&[
            "get",
            "configmap",
            "settings",
            "-n",
            "demo",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(yaml.contains("color: green"), "{yaml}");
    assert!(
        yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );
    assert!(
        yaml.contains("manager: kubectl-client-side-apply"),
        "{yaml}"
    );
    let svc = sim
        .ok(&[
            "get",
            "service",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .await;
    assert!(svc.starts_with("10.96."), "clusterIP {svc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_server_side_of_a_deployment_service_and_configmap() {
    let sim = start().await;
    sim.ok(&["create", "namespace", "demo"]).await;
    let out = sim.ok_in(&["apply", "--server-side", "-f", "-"], APP).await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let mf = sim
        .ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}",
        ])
        .await;
    assert_eq!(mf, "kubectl Apply");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_field_managers_conflict_and_force_conflicts_resolves() {
    let sim = start().await;
    let a = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: default}\ndata: {a: '1', b: '2'}\n";
    let b = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: default}\ndata: {a: 'other'}\n";
    sim.ok_in(
        &["apply", "--server-side", "--field-manager=alpha", "-f", "-"],
        a,
    )
    .await;
    let err = sim
        .fails(
            &["apply", "--server-side", "--field-manager=beta", "-f", "-"],
            Some(b),
        )
        .await;
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"alpha\": .data.a"),
        "{err}"
    );
    sim.ok_in(
        &[
            "apply",
            "--server-side",
            "--field-manager=beta",
            "--force-conflicts",
            "-f",
            "-",
        ],
        b,
    )
    .await;
    let data = sim
        .ok(&["get", "cm", "shared", "-o", "jsonpath={.data}"])
        .await;
    assert_eq!(data, r#"{"a":"other","b":"2"}"#);
    // alpha drops b: nobody else owns it, so it goes.
    let a2 =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: default}\ndata: {}\n";
    sim.ok_in(
        &["apply", "--server-side", "--field-manager=alpha", "-f", "-"],
        a2,
    )
    .await;
    let data = sim
        .ok(&["get", "cm", "shared", "-o", "jsonpath={.data}"])
        .await;
    assert_eq!(data, r#"{"a":"other"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crd_becomes_servable_and_its_objects_print_their_columns() {
    let sim = start().await;
    sim.ok_in(&["apply", "-f", "-"], WIDGET_CRD).await;
    let out = sim
        .ok_in(&["apply", "--server-side", "-f", "-"], WIDGET_CRD)
        .await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
        ),
        "{out}"
    );
    sim.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
    ])
    .await;
    assert!(
        sim.ok_in(&["apply", "-f", "-"], WIDGET)
            .await
            .contains("widget.example.com/w1 created")
    );
    assert!(
        sim.ok_in(&["apply", "--server-side", "-f", "-"], WIDGET)
            .await
            .contains("serverside-applied")
    );
    sim.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])
    .await;
    let table = sim.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SIZE", "READY"]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>() == ["w1", "3", "True"]),
        "{table}"
    );
    let err = sim
        .fails(
            &["apply", "-f", "-"],
            Some(&WIDGET.replace("color: red", "colour: red")),
        )
        .await;
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn all_project_crds_apply_and_are_served() {
    let sim = start().await;
    let dir = project_crds();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/crds exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(!files.is_empty(), "no CRDs in {}", dir.display());
    let out = sim.ok(&["apply", "-f", &dir.to_string_lossy()]).await;
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        files.len(),
        "{out}"
    );
    let kinds = sim
        .ok(&[
            "api-resources",
            "--api-group=kustomize.toolkit.fluxcd.io",
            "-o",
            "name",
        ])
        .await;
    assert!(kinds.contains("kustomizations"), "{kinds}");
    let ks = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: apps, namespace: default}\nspec: {interval: 5m, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: repo}}\n";
    sim.ok_in(&["apply", "--server-side", "-f", "-"], ks).await;
    sim.ok(&["get", "kustomizations.kustomize.toolkit.fluxcd.io", "apps"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_watch_sees_an_update() {
    use tokio::io::AsyncBufReadExt;
    let sim = start().await;
    sim.ok(&["create", "configmap", "watched", "--from-literal=v=one"])
        .await;
    let mut child = tokio::process::Command::new(common::kubectl_path())
        .args([
            "get",
            "configmap",
            "watched",
            "-w",
            "-o",
            "jsonpath={.data.v}{\"\\n\"}",
        ])
        .env("KUBECONFIG", &sim.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl get -w");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("one")
    );
    sim.ok(&[
        "patch",
        "configmap",
        "watched",
        "-p",
        r#"{"data":{"v":"two"}}"#,
    ])
    .await;
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("two")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_objects_and_namespace_deletion_cascades() {
    let sim = start().await;
    sim.ok(&["create", "namespace", "demo"]).await;
    sim.ok_in(&["apply", "-f", "-"], APP).await;
    assert!(
        sim.ok(&["delete", "configmap", "settings", "-n", "demo"])
            .await
            .contains("configmap \"settings\" deleted")
    );
    let err = sim
        .fails(&["get", "configmap", "settings", "-n", "demo"], None)
        .await;
    assert!(err.contains("configmaps \"settings\" not found"), "{err}");
    sim.ok(&["delete", "namespace", "demo"]).await;
    let err = sim.fails(&["get", "namespace", "demo"], None).await;
    assert!(err.contains("namespaces \"demo\" not found"), "{err}");
    let left = sim
        .ok(&[
            "get",
            "deployments,services,configmaps,serviceaccounts",
            "-A",
            "-o",
            "name",
            "--field-selector=metadata.namespace=demo",
        ])
        .await;
    assert!(left.trim().is_empty(), "left behind: {left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_available_succeeds_and_a_failing_deployment_reports_its_deadline() {
    let sim = start().await;
    sim.ok(&["create", "namespace", "demo"]).await;
    sim.ok_in(&["apply", "-f", "-"], APP).await;
    sim.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "-n",
        "demo",
        "--timeout=60s",
    ])
    .await;
    let table = sim.ok(&["get", "deployments", "-n", "demo"]).await;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(rows[1][..4], ["web", "2/2", "2", "2"]);
    let failing = APP.replace("labels: {app: web}\nspec:\n  replicas", "labels: {app: web}\n  annotations: {kubesim.flotilla.io/fail: \"true\"}\nspec:\n  replicas").replace("name: web\n  namespace", "name: broken\n  namespace");
    sim.ok_in(&["apply", "-f", "-"], &failing).await;
    sim.ok(&["wait", "--for=jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}=ProgressDeadlineExceeded", "deployment/broken", "-n", "demo", "--timeout=60s"]).await;
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once, namespace: demo}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}\n";
    sim.ok_in(&["apply", "-f", "-"], job).await;
    sim.ok(&[
        "wait",
        "--for=condition=Complete",
        "job/once",
        "-n",
        "demo",
        "--timeout=60s",
    ])
    .await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: demo}\nspec: {containers: [{name: c, image: busybox}]}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: demo}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
    sim.ok_in(&["apply", "-f", "-"], pod).await;
    sim.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/p",
        "-n",
        "demo",
        "--timeout=60s",
    ])
    .await;
    sim.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Bound",
        "pvc/data",
        "-n",
        "demo",
        "--timeout=60s",
    ])
    .await;
    let pods = sim.ok(&["get", "pods", "-n", "demo"]).await;
    assert!(
        pods.lines().nth(1).is_some_and(
            |l| l.split_whitespace().take(3).collect::<Vec<_>>() == ["p", "1/1", "Running"]
        ),
        "{pods}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_credentials_are_unauthorized_and_client_certificates_work() {
    let sim = start().await;
    let anon = sim.server.kubeconfig().replace(
        &format!("token: {}", sim.server.token()),
        "username: nobody",
    );
    let anon_path = sim.dir.path().join("anon");
    std::fs::write(&anon_path, anon).expect("write");
    let out = tokio::process::Command::new(common::kubectl_path())
        .args(["get", "--raw", "/api/v1/namespaces"])
        .env("KUBECONFIG", &anon_path)
        .output()
        .await
        .expect("kubectl");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert_path = sim.dir.path().join("cert");
    std::fs::write(&cert_path, sim.server.kubeconfig_client_cert()).expect("write");
    let out = tokio::process::Command::new(common::kubectl_path())
        .args(["get", "ns", "default", "-o", "name"])
        .env("KUBECONFIG", &cert_path)
        .output()
        .await
        .expect("kubectl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/default",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_kubernetes_status_errors() {
    let sim = start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let err = sim
        .fails(&["create", "--raw", cms, "-f", "-"], Some("{not json"))
        .await;
    assert!(err.contains("BadRequest"), "{err}");
    let err = sim
        .fails(
            &["create", "--raw", cms, "-f", "-"],
            Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_Valid"}}"#),
        )
        .await;
    assert!(
        err.contains("is invalid") && err.contains("RFC 1123"),
        "{err}"
    );
    let err = sim
        .fails(&["get", "--raw", "/apis/example.com/v1/nothings"], None)
        .await;
    assert!(
        err.contains("NotFound") || err.contains("could not find the requested resource"),
        "{err}"
    );
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024 + 10)
    );
    let err = sim
        .fails(&["create", "--raw", cms, "-f", "-"], Some(&big))
        .await;
    assert!(
        err.contains("too large") || err.contains("RequestEntityTooLarge"),
        "{err}"
    );
    // The server is still healthy and lost nothing.
    sim.ok(&["get", "ns", "default"]).await;
}

/// kubectl's typed clients send built-in kinds as protobuf; each must be stored as the API
/// server stores the JSON form (zero values of omitempty fields left out, structs kept).
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_sends_protobuf_for_built_in_kinds_and_they_are_stored_faithfully() {
    let sim = start().await;
    for args in [
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ][..],
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
        &[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
        ],
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        &[
            "create",
            "rolebinding",
            "readers",
            "--role=reader",
            "--user=ann",
        ],
        &[
            "create",
            "clusterrole",
            "lister",
            "--verb=list",
            "--resource=deployments.apps",
        ],
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=1",
        ],
        &["create", "ingress", "web", "--rule=example.com/=web:80"],
        &["create", "quota", "small", "--hard=pods=10,cpu=2"],
        &["create", "priorityclass", "high", "--value=1000"],
    ] {
        assert!(sim.ok(args).await.contains("created"), "{args:?}");
    }
    let json = |args: &'static [&'static str]| {
        let sim = &sim;
        async move {
            let out = sim.ok(args).await;
            serde_json::from_str::<serde_json::Value>(&out).expect("kubectl prints JSON")
        }
    };
    let deployment = json(&["get", "deployment", "web", "-o", "json"]).await;
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["resources"], serde_json::json!({}));
    // proto2 writes every non-pointer field; Go's omitempty must drop the zero ones.
    assert!(
        container.get("stdin").is_none() && container.get("tty").is_none(),
        "{container}"
    );
    assert!(deployment["spec"].get("paused").is_none(), "{deployment}");

    let job = json(&["get", "job", "once", "-o", "json"]).await;
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    let cronjob = json(&["get", "cronjob", "tick", "-o", "json"]).await;
    assert_eq!(cronjob["spec"]["schedule"], "*/5 * * * *");
    let role = json(&["get", "role", "reader", "-o", "json"]).await;
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    assert_eq!(role["rules"][0]["apiGroups"], serde_json::json!([""]));
    let binding = json(&["get", "rolebinding", "readers", "-o", "json"]).await;
    assert_eq!(binding["subjects"][0]["name"], "ann");
    assert_eq!(binding["roleRef"]["name"], "reader");
    let service = json(&["get", "service", "web", "-o", "json"]).await;
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    let pdb = json(&["get", "pdb", "web", "-o", "json"]).await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let ingress = json(&["get", "ingress", "web", "-o", "json"]).await;
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
    let quota = json(&["get", "quota", "small", "-o", "json"]).await;
    assert_eq!(quota["spec"]["hard"]["cpu"], "2");
    let class = json(&["get", "priorityclass", "high", "-o", "json"]).await;
    assert_eq!(class["value"], 1000);

    sim.ok(&["scale", "deployment", "web", "--replicas=3"])
        .await;
    let out = sim
        .ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
}
