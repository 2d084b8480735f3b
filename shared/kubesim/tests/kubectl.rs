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
