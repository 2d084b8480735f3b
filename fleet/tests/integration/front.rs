//! The `flotilla` binary: `kustomize` in process, every other command through `flotilla-fleet`.

use std::process::Command;

fn flotilla(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .output()
        .expect("flotilla runs")
}

#[test]
fn fleet_commands_are_handed_to_the_fleet_binary_under_the_same_name() {
    let out = flotilla(&["get", "--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: flotilla get"), "{help}");
    let out = flotilla(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error: {out:?}");
}

#[test]
fn kustomize_builds_in_the_small_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "namePrefix: p-\nresources: [cm.yaml]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )
    .expect("write");
    let out = flotilla(&["kustomize", &dir.path().to_string_lossy()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p-c\n"
    );
}
