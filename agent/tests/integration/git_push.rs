//! The commit-and-push module against real servers: git daemon with receive-pack, git
//! http-backend behind lighttpd with basic auth, and sshd.

use crate::support;

use std::time::Duration;

use agent::source::git::{Auth, GitCache, RepoUrl};
use agent::source::push::{self, CommitRequest, FileChange, PushOutcome};
use support::Origin;

const TIMEOUT: Duration = Duration::from_secs(60);

fn request(changes: &[(&str, Option<&str>)]) -> CommitRequest {
    CommitRequest {
        branch: "main".into(),
        message: "flotilla: update".into(),
        author_name: "Flotilla".into(),
        author_email: "flotilla@example.com".into(),
        changes: changes
            .iter()
            .map(|(path, content)| FileChange {
                path: (*path).into(),
                content: content.map(|c| c.as_bytes().to_vec()),
            })
            .collect(),
    }
}

fn push(url: &str, auth: &Auth, req: &CommitRequest) -> push::Result<PushOutcome> {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = GitCache::new(dir.path().join("cache"));
    push::commit_and_push(
        &cache,
        &RepoUrl::parse(url).expect("url"),
        auth,
        req,
        TIMEOUT,
    )
}

#[test]
fn a_commit_round_trips_through_git_daemon_and_a_repeat_is_a_no_op() {
    let origin = Origin::new(&[("keep.yaml", "k: 1\n"), ("old.yaml", "o: 1\n")]);
    let daemon = support::git_daemon(&origin.repos_root());
    let url = format!("git://127.0.0.1:{}/origin.git", daemon.port);
    let before = origin.origin_main();

    let dir = tempfile::tempdir().expect("tempdir");
    let cache = GitCache::new(dir.path().join("cache"));
    let url = RepoUrl::parse(&url).expect("url");
    let req = request(&[
        ("clusters/prod/app.yaml", Some("replicas: 3\n")),
        ("old.yaml", None),
    ]);
    let outcome = push::commit_and_push(&cache, &url, &Auth::none(), &req, TIMEOUT).expect("push");
    let PushOutcome::Pushed { commit, revision } = outcome else {
        panic!("expected a push, got {outcome:?}")
    };
    assert_eq!(origin.origin_main(), commit.to_string());
    assert_eq!(revision, format!("main@sha1:{commit}"));
    assert_eq!(origin.show("clusters/prod/app.yaml"), "replicas: 3");
    assert_eq!(origin.show("keep.yaml"), "k: 1");
    let parent = support::run(
        std::process::Command::new("git")
            .arg("-C")
            .arg(&origin.bare)
            .args(["rev-parse", "main^"]),
    );
    assert_eq!(
        parent, before,
        "the commit sits on top of the previous head"
    );

    let again = push::commit_and_push(&cache, &url, &Auth::none(), &req, TIMEOUT).expect("repeat");
    assert_eq!(again, PushOutcome::Unchanged { commit, revision });
}

#[test]
fn pushing_over_http_uses_basic_auth_and_a_wrong_password_never_shows_up() {
    let origin = Origin::new(&[("a.yaml", "a: 1\n")]);
    let http = support::lighttpd(
        &origin.repos_root(),
        "flux",
        "push-pass-123",
        "unused-token",
    );
    let url = format!("http://127.0.0.1:{}/basic/origin.git", http.port);
    let req = request(&[("b.yaml", Some("b: 2\n"))]);

    let outcome =
        push(&url, &Auth::basic("flux", "push-pass-123"), &req).expect("authenticated push");
    assert!(matches!(outcome, PushOutcome::Pushed { .. }), "{outcome:?}");
    assert_eq!(origin.show("b.yaml"), "b: 2");

    let err = push(
        &url,
        &Auth::basic("flux", "wrong-pass-456"),
        &request(&[("c.yaml", Some("c\n"))]),
    )
    .expect_err("wrong password");
    let chain = agent::source::git::error_chain(&err);
    assert!(
        !chain.contains("wrong-pass-456"),
        "password leaked: {chain}"
    );
}

#[test]
fn pushing_over_ssh_uses_the_secret_identity() {
    let origin = Origin::new(&[("a.yaml", "a: 1\n")]);
    let sshd = support::sshd();
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.server.port,
        origin.bare.display()
    );
    let auth = Auth::ssh(sshd.identity.clone(), sshd.known_hosts.clone());
    let outcome =
        push(&url, &auth, &request(&[("via-ssh.yaml", Some("s: 1\n"))])).expect("push over ssh");
    let PushOutcome::Pushed { commit, .. } = outcome else {
        panic!("expected a push, got {outcome:?}")
    };
    assert_eq!(origin.origin_main(), commit.to_string());
    assert_eq!(origin.show("via-ssh.yaml"), "s: 1");
}

#[test]
fn a_missing_branch_is_created_from_an_empty_tree() {
    let origin = Origin::new(&[("a.yaml", "a: 1\n")]);
    let mut req = request(&[("fleet/cluster.yaml", Some("name: prod\n"))]);
    req.branch = "bootstrap".into();
    let outcome = push(&origin.file_url(), &Auth::none(), &req).expect("push to a new branch");
    assert!(matches!(outcome, PushOutcome::Pushed { .. }), "{outcome:?}");
    let files = support::run(
        std::process::Command::new("git")
            .arg("-C")
            .arg(&origin.bare)
            .args(["ls-tree", "-r", "--name-only", "bootstrap"]),
    );
    assert_eq!(files, "fleet/cluster.yaml");
}

#[test]
fn unsafe_paths_are_refused_before_anything_is_pushed() {
    let origin = Origin::new(&[("a.yaml", "a: 1\n")]);
    let before = origin.origin_main();
    let err = push(
        &origin.file_url(),
        &Auth::none(),
        &request(&[("../escape", Some("x"))]),
    )
    .expect_err("refused");
    assert!(matches!(err, push::Error::InvalidPath(_)), "{err}");
    assert_eq!(origin.origin_main(), before);
}

#[test]
fn pushing_over_https_trusts_the_secret_ca_certificate() {
    let origin = Origin::new(&[("a.yaml", "a: 1\n")]);
    let (https, ca_pem) = support::lighttpd_tls(&origin.repos_root(), "flux", "tls-push");
    let url = format!("https://127.0.0.1:{}/basic/origin.git", https.port);
    let auth = Auth::basic("flux", "tls-push").with_ca_cert(ca_pem.into_bytes());
    let outcome =
        push(&url, &auth, &request(&[("tls.yaml", Some("t: 1\n"))])).expect("push over https");
    assert!(matches!(outcome, PushOutcome::Pushed { .. }), "{outcome:?}");
    assert_eq!(origin.show("tls.yaml"), "t: 1");
}
