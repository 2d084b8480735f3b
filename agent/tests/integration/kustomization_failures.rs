//! Failures and resilience: suspend, broken YAML, unhealthy workloads, a failing
//! Kustomization next to a healthy one, injected API errors, and an agent killed mid-apply.

use crate::support_ks;

use std::time::Duration;

use serde_json::json;
use support_ks::{Bed, Repo, config_map, deployment, kustomization, ready, ready_reason};

#[actix::test]
async fn a_suspended_kustomization_applies_nothing_until_resumed() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write(
        "suspended/config.yaml",
        &config_map("held", "default", "one"),
    )
    .write("live/config.yaml", &config_map("live", "default", "one"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("held", "app", "./suspended", json!({})))
        .await;
    bed.until_ready_at("held", &first.artifact.revision).await;
    bed.apply(&kustomization(
        "held",
        "app",
        "./suspended",
        json!({"suspend": true}),
    ))
    .await;
    bed.until("held", "suspension seen", |_| true).await;
    // The suspension is visible in Flux's metric once the actor has handled it.
    for _ in 0..400 {
        if bed.metrics.render().lines().any(|l| {
            l.starts_with("gotk_suspend_status") && l.contains("name=\"held\"") && l.ends_with(" 1")
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    repo.write(
        "suspended/config.yaml",
        &config_map("held", "default", "two"),
    )
    .write("live/config.yaml", &config_map("live", "default", "two"));
    let second = repo.commit("second");
    bed.publish(second.clone()).await;
    // A Kustomization of the same source proves the artifact was delivered and handled.
    bed.apply(&kustomization("live", "app", "./live", json!({})))
        .await;
    bed.until_ready_at("live", &second.artifact.revision).await;
    let held = bed.get("v1", "ConfigMap", "default", "held").await;
    assert_eq!(held.map(|c| c["data"]["value"].clone()), Some(json!("one")));
    let k = bed.kustomization("held").await;
    assert_eq!(
        k.status.and_then(|s| s.last_applied_revision),
        Some(first.artifact.revision.clone())
    );

    bed.apply(&kustomization(
        "held",
        "app",
        "./suspended",
        json!({"suspend": false}),
    ))
    .await;
    bed.until_ready_at("held", &second.artifact.revision).await;
    let held = bed.get("v1", "ConfigMap", "default", "held").await;
    assert_eq!(held.map(|c| c["data"]["value"].clone()), Some(json!("two")));
}

#[actix::test]
async fn broken_yaml_is_a_build_failure_and_leaves_the_cluster_unchanged() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("config.yaml", &config_map("settings", "default", "good"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("settings", "app", "./", json!({})))
        .await;
    bed.until_ready_at("settings", &first.artifact.revision)
        .await;

    repo.write("config.yaml", &config_map("settings", "default", "changed"))
        .write(
            "broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n",
        );
    let second = repo.commit("broken");
    bed.publish(second.clone()).await;
    let k = bed
        .until("settings", "BuildFailed", |k| {
            ready_reason(k).as_deref() == Some("BuildFailed")
        })
        .await;
    let status = k.status.unwrap_or_default();
    assert_eq!(
        status.last_applied_revision,
        Some(first.artifact.revision.clone())
    );
    assert_eq!(
        status.last_attempted_revision,
        Some(second.artifact.revision.clone())
    );
    assert!(api::conditions::is_true(&status.conditions, "Stalled"));
    let settings = bed.get("v1", "ConfigMap", "default", "settings").await;
    assert_eq!(
        settings.map(|c| c["data"]["value"].clone()),
        Some(json!("good"))
    );
    bed.until_event("settings", "BuildFailed").await;
}

#[actix::test]
async fn a_deployment_that_fails_is_reported_as_health_check_failed_by_name() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    let failing = deployment("bad", "default", 1).replacen(
        "  name: bad\n",
        "  name: bad\n  annotations:\n    kubesim.flotilla.io/fail: \"true\"\n",
        1,
    );
    repo.write("bad.yaml", &failing);
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "bad",
        "app",
        "./",
        json!({"wait": true, "timeout": "5s"}),
    ))
    .await;
    let k = bed
        .until("bad", "HealthCheckFailed", |k| {
            ready_reason(k).as_deref() == Some("HealthCheckFailed")
        })
        .await;
    let (status, _, message) = ready(&k).unwrap_or_default();
    assert_eq!(status, "False");
    assert!(message.contains("Deployment/default/bad"), "{message}");
    let conditions = k.status.unwrap_or_default().conditions;
    let healthy = api::conditions::find_condition(&conditions, "Healthy")
        .unwrap_or_else(|| panic!("no Healthy condition"));
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("False", "HealthCheckFailed")
    );
}

#[actix::test]
async fn a_kustomization_stuck_waiting_never_delays_a_healthy_one() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("slow/config.yaml", &config_map("slow", "default", "x"))
        .write("fast/config.yaml", &config_map("fast", "default", "x"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    // Waits a minute for a Deployment nobody creates.
    bed.apply(&kustomization(
        "slow",
        "app",
        "./slow",
        json!({"timeout": "60s", "healthChecks": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "never", "namespace": "default"}
        ]}),
    ))
    .await;
    bed.until("slow", "its config applied", |_| true).await;
    bed.apply(&kustomization("fast", "app", "./fast", json!({})))
        .await;
    bed.until_ready_at("fast", &first.artifact.revision).await;
    let slow = bed.kustomization("slow").await;
    assert!(
        still_in_progress(&slow),
        "slow finished first: {:?}",
        ready(&slow)
    );
}

/// No outcome yet: no Ready condition, or `Unknown` while a reconcile is under way.
fn still_in_progress(k: &api::kustomize::Kustomization) -> bool {
    ready(k).is_none_or(|(status, ..)| status == "Unknown")
}

#[actix::test]
async fn a_new_revision_cancels_the_health_wait_for_the_old_one() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("config.yaml", &config_map("settings", "default", "one"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    // Waits (up to far longer than this test may take) for a Deployment the first
    // revision lacks; the second revision brings it.
    bed.apply(&kustomization(
        "waits",
        "app",
        "./",
        json!({"timeout": "10m", "healthChecks": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default"}
        ]}),
    ))
    .await;
    let expected = format!(
        "Running health checks for revision {} with a timeout of 10m0s",
        first.artifact.revision
    );
    let waiting = bed
        .until("waits", "the health check in progress", |k| {
            let conditions = k.status.clone().unwrap_or_default().conditions;
            let reconciling = api::conditions::find_condition(&conditions, "Reconciling");
            let healthy = api::conditions::find_condition(&conditions, "Healthy");
            reconciling.is_some_and(|c| c.status == "True" && c.message == expected)
                && healthy.is_some_and(|c| c.status == "Unknown")
        })
        .await;
    assert_eq!(
        ready(&waiting).map(|r| (r.0, r.1)),
        Some(("Unknown".into(), "Progressing".into()))
    );

    repo.write("web.yaml", &deployment("web", "default", 1));
    let second = repo.commit("second");
    bed.publish(second.clone()).await;
    bed.until_ready_at("waits", &second.artifact.revision).await;
    assert_eq!(
        bed.until_event("waits", "HealthCheckCanceled").await,
        "Health checks canceled due to new reconciliation triggered by GitRepository/flux-system/app"
    );
}

#[actix::test]
async fn ten_percent_of_api_calls_failing_still_converges() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    for i in 0..10 {
        repo.write(
            &format!("config-{i}.yaml"),
            &config_map(&format!("c{i}"), "default", "v"),
        );
    }
    repo.write("app.yaml", &deployment("web", "default", 2));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.server.set_faults(kubesim::Faults {
        error_rate: 0.1,
        ..kubesim::Faults::default()
    });
    // The test's own writes retry too: they meet the same faults.
    for attempt in 0.. {
        let api: kube::Api<api::kustomize::Kustomization> =
            kube::Api::namespaced(bed.client.clone(), support_ks::NS);
        let k = kustomization("web", "app", "./", json!({"wait": true}));
        let result = api
            .patch(
                "web",
                &kube::api::PatchParams::apply("test").force(),
                &kube::api::Patch::Apply(&k),
            )
            .await;
        if result.is_ok() {
            break;
        }
        assert!(
            attempt < 50,
            "could not create the Kustomization: {result:?}"
        );
    }
    let k = bed.until_ready_at("web", &first.artifact.revision).await;
    bed.server.set_faults(kubesim::Faults::default());
    assert_eq!(
        k.status.and_then(|s| s.inventory).map(|i| i.entries.len()),
        Some(11)
    );
    for i in 0..10 {
        assert!(
            bed.get("v1", "ConfigMap", "default", &format!("c{i}"))
                .await
                .is_some()
        );
    }
}

#[actix::test]
async fn an_agent_killed_mid_apply_converges_after_restart_with_a_consistent_inventory() {
    let mut bed = Bed::start().await;
    let repo = Repo::new("app");
    const COUNT: usize = 60;
    for i in 0..COUNT {
        repo.write(
            &format!("config-{i:02}.yaml"),
            &config_map(&format!("c{i:02}"), "default", "v"),
        );
    }
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    // Slow requests, so that the kill lands in the middle of the apply.
    bed.server.set_faults(kubesim::Faults {
        latency: Duration::from_millis(15),
        ..kubesim::Faults::default()
    });
    bed.apply(&kustomization("many", "app", "./", json!({})))
        .await;
    let mut applied = 0;
    for _ in 0..2000 {
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(bed.client.clone(), "default");
        applied = api
            .list(&kube::api::ListParams::default().labels("kustomize.toolkit.fluxcd.io/name=many"))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if applied >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bed.stop_agent().await;
    assert!(
        (5..COUNT).contains(&applied),
        "the kill did not land mid-apply ({applied} applied)"
    );
    assert!(still_in_progress(&bed.kustomization("many").await));
    bed.server.set_faults(kubesim::Faults::default());

    bed.start_agent().await;
    let k = bed.until_ready_at("many", &first.artifact.revision).await;
    assert_eq!(
        k.status.and_then(|s| s.inventory).map(|i| i.entries.len()),
        Some(COUNT)
    );

    // The inventory is whole: removing half the files prunes exactly that half.
    for i in COUNT / 2..COUNT {
        repo.remove(&format!("config-{i:02}.yaml"));
    }
    let second = repo.commit("half");
    bed.publish(second.clone()).await;
    bed.until_ready_at("many", &second.artifact.revision).await;
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(bed.client.clone(), "default");
    let left = api
        .list(&kube::api::ListParams::default().labels("kustomize.toolkit.fluxcd.io/name=many"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .len();
    assert_eq!(left, COUNT / 2);
}
