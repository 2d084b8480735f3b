//! SOPS decryption (`spec.decryption`): encrypted Secrets and generator files in Git are
//! applied decrypted with the age or PGP keys of the decryption Secret; a wrong key or a
//! tampered value fails the build with no secret in the status, and nothing is applied.

use crate::support_ks;
use crate::support_sops;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use support_ks::{Bed, NS, Repo, config_map, kustomization, ready, ready_reason};
use support_sops::Sealer;

const PASSWORD: &str = "correct-horse-battery";

fn db_secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "labels": {"app": "web"}},
        "type": "Opaque",
        "stringData": {"password": PASSWORD, "user": "admin"},
    })
}

fn key_secret(name: &str, identity: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {"identity.agekey": STANDARD.encode(identity)},
    })
}

fn decrypting(extra: Value) -> Value {
    let mut spec = json!({
        "targetNamespace": "default",
        "decryption": {"provider": "sops", "secretRef": {"name": "sops-keys"}},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

fn decoded(secret: &Option<Value>, key: &str) -> Option<String> {
    let data = secret.as_ref()?["data"][key].as_str()?;
    String::from_utf8(STANDARD.decode(data).ok()?).ok()
}

#[actix::test]
async fn an_encrypted_secret_and_generator_file_are_applied_decrypted() {
    let bed = Bed::start().await;
    let (identity, recipient) = support_sops::age_key();
    let sealer = Sealer::new(&recipient);
    bed.apply(&key_secret("sops-keys", &identity)).await;
    let repo = Repo::new("app");
    repo.write("app/secret.yaml", &sealer.seal_yaml(&db_secret()))
        .write(
            "app/kustomization.yaml",
            "resources:\n- secret.yaml\nsecretGenerator:\n- name: api\n  envs: [api.env]\ngeneratorOptions:\n  disableNameSuffixHash: true\n",
        )
        .write("app/api.env", &sealer.seal_dotenv(&[("token", "t0ken-value")]));
    let first = repo.commit("encrypted secrets");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "secrets",
        "app",
        "./app",
        decrypting(json!({"namePrefix": "p-"})),
    ))
    .await;
    bed.until_ready_at("secrets", &first.artifact.revision)
        .await;

    let db = bed.get("v1", "Secret", "default", "p-db").await;
    assert_eq!(decoded(&db, "password").as_deref(), Some(PASSWORD));
    assert_eq!(decoded(&db, "user").as_deref(), Some("admin"));
    assert!(
        db.as_ref().is_some_and(|s| s.get("sops").is_none()),
        "{db:?}"
    );
    let api = bed.get("v1", "Secret", "default", "p-api").await;
    assert_eq!(decoded(&api, "token").as_deref(), Some("t0ken-value"));
}

#[actix::test]
async fn a_wrong_key_fails_the_build_without_secrets_in_status_until_the_key_is_fixed() {
    let bed = Bed::start().await;
    let (identity, recipient) = support_sops::age_key();
    let (wrong, _) = support_sops::age_key();
    bed.apply(&key_secret("sops-keys", &wrong)).await;
    let repo = Repo::new("app");
    repo.write(
        "secret.yaml",
        &Sealer::new(&recipient).seal_yaml(&db_secret()),
    )
    .write("config.yaml", &config_map("settings", "default", "one"));
    let first = repo.commit("encrypted");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "secrets",
        "app",
        "./",
        decrypting(json!({})),
    ))
    .await;
    let k = bed
        .until("secrets", "BuildFailed", |k| {
            ready_reason(k).as_deref() == Some("BuildFailed")
        })
        .await;
    let (_, _, message) = ready(&k).unwrap_or_default();
    assert!(
        message.contains("decryption failed for '~G_v1_Secret/db'")
            && message.contains("cannot get sops data key"),
        "{message}"
    );
    let status = serde_json::to_string(&k.status).unwrap_or_default();
    for secret in [PASSWORD, identity.trim(), wrong.trim()] {
        assert!(!status.contains(secret.lines().last().unwrap_or(secret)));
    }
    // A wrong key is not terminal: the Secret can be fixed without a new commit.
    assert!(!api::conditions::is_true(
        &k.status.clone().unwrap_or_default().conditions,
        "Stalled"
    ));
    assert_eq!(
        bed.get("v1", "ConfigMap", "default", "settings").await,
        None
    );
    assert_eq!(bed.get("v1", "Secret", "default", "db").await, None);

    bed.apply(&key_secret("sops-keys", &identity)).await;
    bed.until_ready_at("secrets", &first.artifact.revision)
        .await;
    let db = bed.get("v1", "Secret", "default", "db").await;
    assert_eq!(decoded(&db, "password").as_deref(), Some(PASSWORD));
}

/// As Flux: a hand edit of an unencrypted field after encryption (SOPS' MAC no longer
/// matches) is applied; a ciphertext moved to another key fails, since every value is
/// authenticated with its key path, and nothing is applied.
#[actix::test]
async fn a_hand_edited_label_is_applied_but_a_moved_ciphertext_fails() {
    let bed = Bed::start().await;
    let (identity, recipient) = support_sops::age_key();
    bed.apply(&key_secret("sops-keys", &identity)).await;
    let sealer = Sealer::new(&recipient);
    let mut edited = sealer.seal(&db_secret());
    edited["metadata"]["labels"]["app"] = json!("other");
    let repo = Repo::new("app");
    repo.write(
        "secret.yaml",
        &serde_saphyr::to_string(&edited).unwrap_or_else(|e| panic!("{e}")),
    );
    let first = repo.commit("edited label");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "secrets",
        "app",
        "./",
        decrypting(json!({})),
    ))
    .await;
    bed.until_ready_at("secrets", &first.artifact.revision)
        .await;
    let applied = bed.get("v1", "Secret", "default", "db").await;
    assert_eq!(decoded(&applied, "password").as_deref(), Some(PASSWORD));
    assert_eq!(
        applied
            .as_ref()
            .map(|s| s["metadata"]["labels"]["app"].clone()),
        Some(json!("other"))
    );

    let mut moved = sealer.seal(&db_secret());
    moved["metadata"]["name"] = json!("moved");
    let password = moved["stringData"]["password"].clone();
    moved["stringData"]["user"] = password;
    repo.write(
        "secret.yaml",
        &serde_saphyr::to_string(&moved).unwrap_or_else(|e| panic!("{e}")),
    )
    .write("config.yaml", &config_map("settings", "default", "one"));
    let second = repo.commit("moved ciphertext");
    bed.publish(second.clone()).await;
    let k = bed
        .until("secrets", "BuildFailed", |k| {
            ready_reason(k).as_deref() == Some("BuildFailed")
        })
        .await;
    let (_, _, message) = ready(&k).unwrap_or_default();
    assert!(message.contains("decrypt"), "{message}");
    assert!(!message.contains(PASSWORD));
    assert_eq!(
        bed.get("v1", "ConfigMap", "default", "settings").await,
        None
    );
    assert_eq!(bed.get("v1", "Secret", "default", "moved").await, None);
}

#[actix::test]
async fn a_secret_sealed_to_a_pgp_key_is_applied_with_the_asc_entry() {
    let bed = Bed::start().await;
    let (armored, key) = support_sops::pgp_key();
    bed.apply(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sops-keys", "namespace": NS},
        "data": {"team.asc": STANDARD.encode(&armored)},
    }))
    .await;
    let mut sealer = Sealer::new("unused");
    sealer.pgp = Some(key);
    let repo = Repo::new("app");
    repo.write("secret.yaml", &sealer.seal_yaml(&db_secret()));
    let first = repo.commit("pgp");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "secrets",
        "app",
        "./",
        decrypting(json!({})),
    ))
    .await;
    bed.until_ready_at("secrets", &first.artifact.revision)
        .await;
    let db = bed.get("v1", "Secret", "default", "db").await;
    assert_eq!(decoded(&db, "password").as_deref(), Some(PASSWORD));
}
