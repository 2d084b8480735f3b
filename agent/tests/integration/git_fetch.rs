//! Fetching Git sources over every transport from real servers on 127.0.0.1.

use crate::support;

use std::time::Duration;

use agent::source::git::{Auth, Error, GitCache, GitRef, RepoUrl};
use support::Origin;

const TIMEOUT: Duration = Duration::from_secs(60);

fn new_cache() -> (tempfile::TempDir, GitCache) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = GitCache::new(dir.path().join("cache"));
    (dir, cache)
}

fn fetch(cache: &GitCache, url: &str, reference: &GitRef, auth: &Auth) -> Result<String, Error> {
    let url = RepoUrl::parse(url)?;
    cache
        .fetch(&url, reference, auth, TIMEOUT)
        .map(|r| r.revision)
}

fn main_branch() -> GitRef {
    GitRef::branch("main").expect("valid branch")
}

#[test]
fn a_file_url_is_cloned_once_and_a_moved_branch_gives_a_new_revision() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let (_dir, cache) = new_cache();
    let first =
        fetch(&cache, &origin.file_url(), &main_branch(), &Auth::none()).expect("first fetch");
    assert_eq!(first, format!("main@sha1:{}", origin.head()));

    let unchanged =
        fetch(&cache, &origin.file_url(), &main_branch(), &Auth::none()).expect("no-op fetch");
    assert_eq!(unchanged, first);

    let moved = origin.commit(&[("app.yaml", "v: 2\n")], "second");
    let second = fetch(&cache, &origin.file_url(), &main_branch(), &Auth::none())
        .expect("incremental fetch");
    assert_eq!(second, format!("main@sha1:{moved}"));
}

#[test]
fn git_daemon_urls_are_fetched() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let daemon = support::git_daemon(&origin.repos_root());
    let (_dir, cache) = new_cache();
    let url = format!("git://127.0.0.1:{}/origin.git", daemon.port);
    let revision = fetch(&cache, &url, &main_branch(), &Auth::none()).expect("fetch over git://");
    assert_eq!(revision, format!("main@sha1:{}", origin.head()));
}

#[test]
fn http_basic_auth_is_used_and_a_wrong_password_is_a_retryable_error_without_the_password() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let http = support::lighttpd(
        &origin.repos_root(),
        "flux",
        "correct-horse",
        "unused-token",
    );
    let url = format!("http://127.0.0.1:{}/basic/origin.git", http.port);
    let (_dir, cache) = new_cache();

    let revision = fetch(
        &cache,
        &url,
        &main_branch(),
        &Auth::basic("flux", "correct-horse"),
    )
    .expect("authenticated");
    assert_eq!(revision, format!("main@sha1:{}", origin.head()));

    let (_dir2, cache2) = new_cache();
    let err = fetch(
        &cache2,
        &url,
        &main_branch(),
        &Auth::basic("flux", "wrong-battery-staple"),
    )
    .expect_err("rejected");
    assert!(!err.is_terminal(), "wrong credentials are retried: {err}");
    let chain = agent::source::git::error_chain(&err);
    assert!(
        !chain.contains("wrong-battery-staple"),
        "password leaked: {chain}"
    );
    assert!(
        !format!("{err:?}").contains("wrong-battery-staple"),
        "password leaked in Debug"
    );

    let err = fetch(&cache2, &url, &main_branch(), &Auth::none()).expect_err("no credentials");
    assert!(!err.is_terminal(), "{err}");
    assert!(err.to_string().contains("authentication required"), "{err}");
}

#[test]
fn a_password_written_into_the_url_authenticates_without_being_shown() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let http = support::lighttpd(
        &origin.repos_root(),
        "flux",
        "in-url-secret",
        "unused-token",
    );
    let url = format!(
        "http://flux:in-url-secret@127.0.0.1:{}/basic/origin.git",
        http.port
    );
    let (_dir, cache) = new_cache();
    assert!(fetch(&cache, &url, &main_branch(), &Auth::none()).is_ok());
    assert!(
        !RepoUrl::parse(&url)
            .expect("valid")
            .to_string()
            .contains("in-url-secret")
    );
}

#[test]
fn http_bearer_tokens_are_sent_as_an_authorization_header() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let http = support::lighttpd(&origin.repos_root(), "unused", "unused", "tok-12345");
    let url = format!("http://127.0.0.1:{}/bearer/origin.git", http.port);
    let (_dir, cache) = new_cache();
    let revision =
        fetch(&cache, &url, &main_branch(), &Auth::bearer("tok-12345")).expect("bearer accepted");
    assert_eq!(revision, format!("main@sha1:{}", origin.head()));
    let (_dir2, cache2) = new_cache();
    let err = fetch(
        &cache2,
        &url,
        &main_branch(),
        &Auth::bearer("tok-wrong-999"),
    )
    .expect_err("bearer refused");
    assert!(
        !agent::source::git::error_chain(&err).contains("tok-wrong-999"),
        "{err}"
    );
}

#[test]
fn ssh_urls_use_the_secret_identity_and_pin_the_host_key() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let sshd = support::sshd();
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.server.port,
        origin.bare.display()
    );
    let (_dir, cache) = new_cache();
    let auth = Auth::ssh(sshd.identity.clone(), sshd.known_hosts.clone());
    let revision = fetch(&cache, &url, &main_branch(), &auth).expect("fetch over ssh");
    assert_eq!(revision, format!("main@sha1:{}", origin.head()));

    let moved = origin.commit(&[("app.yaml", "v: 2\n")], "second");
    let revision = fetch(&cache, &url, &main_branch(), &auth).expect("incremental fetch over ssh");
    assert_eq!(revision, format!("main@sha1:{moved}"));

    let (_dir2, cache2) = new_cache();
    let impostor = Auth::ssh(sshd.identity.clone(), sshd.wrong_known_hosts.clone());
    let err = fetch(&cache2, &url, &main_branch(), &impostor).expect_err("unknown host key");
    assert!(!err.is_terminal(), "{err}");
    assert!(
        err.to_string().contains("Host key verification failed"),
        "{err}"
    );
}

#[test]
fn invalid_urls_and_unsupported_schemes_are_terminal_errors_with_clear_messages() {
    let (_dir, cache) = new_cache();
    for (url, expected) in [
        ("ftp://example.com/repo.git", "unsupported URL scheme 'ftp'"),
        ("not a url", "invalid Git URL"),
        ("https://", "invalid Git URL"),
        ("relative/path", "invalid Git URL"),
    ] {
        let err = fetch(&cache, url, &main_branch(), &Auth::none()).expect_err(url);
        assert!(err.is_terminal(), "{url}: {err}");
        assert!(err.to_string().contains(expected), "{url}: {err}");
    }
}

#[test]
fn tags_and_semver_ranges_resolve_to_the_tagged_commit() {
    let origin = Origin::new(&[("v", "1.0.0")]);
    origin.tag("v1.0.0", false);
    let c120 = origin.commit(&[("v", "1.2.0")], "1.2.0");
    origin.tag("v1.2.0", true);
    origin.commit(&[("v", "1.3.0-rc.1")], "rc");
    origin.tag("v1.3.0-rc.1", true);
    let c200 = origin.commit(&[("v", "2.0.0")], "2.0.0");
    origin.tag("v2.0.0", false);
    let (_dir, cache) = new_cache();
    let url = origin.file_url();

    let tag = GitRef::from_spec(None, Some("v1.2.0"), None, None, None).expect("tag ref");
    assert_eq!(
        fetch(&cache, &url, &tag, &Auth::none()).expect("tag"),
        format!("v1.2.0@sha1:{c120}")
    );

    let range =
        GitRef::from_spec(None, None, Some(">=1.0.0 <2.0.0"), None, None).expect("semver ref");
    assert_eq!(
        fetch(&cache, &url, &range, &Auth::none()).expect("semver"),
        format!("v1.2.0@sha1:{c120}")
    );

    let any = GitRef::from_spec(None, None, Some("*"), None, None).expect("semver ref");
    assert_eq!(
        fetch(&cache, &url, &any, &Auth::none()).expect("semver"),
        format!("v2.0.0@sha1:{c200}")
    );

    let none = GitRef::from_spec(None, None, Some("^3"), None, None).expect("semver ref");
    let err = fetch(&cache, &url, &none, &Auth::none()).expect_err("no match");
    assert!(matches!(err, Error::NoMatchingTag { .. }), "{err}");
}

#[test]
fn full_ref_names_and_commits_resolve_with_fluxs_revision_format() {
    let origin = Origin::new(&[("a", "1")]);
    let first = origin.head();
    let pr = origin.commit(&[("a", "2")], "pr");
    origin.push_ref("refs/pull/1/head");
    let (_dir, cache) = new_cache();
    let url = origin.file_url();

    let name =
        GitRef::from_spec(None, None, None, Some("refs/pull/1/head"), None).expect("name ref");
    assert_eq!(
        fetch(&cache, &url, &name, &Auth::none()).expect("name"),
        format!("refs/pull/1/head@sha1:{pr}")
    );

    let commit = GitRef::from_spec(None, None, None, None, Some(&first)).expect("commit ref");
    assert_eq!(
        fetch(&cache, &url, &commit, &Auth::none()).expect("commit"),
        format!("sha1:{first}")
    );

    let on_branch =
        GitRef::from_spec(Some("main"), None, None, None, Some(&first)).expect("commit ref");
    assert_eq!(
        fetch(&cache, &url, &on_branch, &Auth::none()).expect("commit"),
        format!("main@sha1:{first}")
    );

    let missing =
        GitRef::from_spec(None, None, None, None, Some(&"1".repeat(40))).expect("commit ref");
    let err = fetch(&cache, &url, &missing, &Auth::none()).expect_err("unknown commit");
    assert!(matches!(err, Error::CommitNotFound { .. }), "{err}");
}

#[test]
fn a_force_pushed_history_is_followed() {
    let origin = Origin::new(&[("a", "1")]);
    origin.commit(&[("a", "2")], "two");
    let (_dir, cache) = new_cache();
    let url = origin.file_url();
    fetch(&cache, &url, &main_branch(), &Auth::none()).expect("before");
    let rewritten = origin.force_push_new_history(&[("b", "new")]);
    let revision = fetch(&cache, &url, &main_branch(), &Auth::none()).expect("after force-push");
    assert_eq!(revision, format!("main@sha1:{rewritten}"));
}

#[test]
fn a_server_that_went_down_gives_a_retryable_error() {
    let origin = Origin::new(&[("a", "1")]);
    let mut daemon = support::git_daemon(&origin.repos_root());
    let url = format!("git://127.0.0.1:{}/origin.git", daemon.port);
    let (_dir, cache) = new_cache();
    fetch(&cache, &url, &main_branch(), &Auth::none()).expect("while up");
    daemon.stop();
    let err = fetch(&cache, &url, &main_branch(), &Auth::none()).expect_err("server down");
    assert!(!err.is_terminal(), "{err}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let silent = support::silent_server();
    let (_dir, cache) = new_cache();
    let url = RepoUrl::parse(&format!("git://127.0.0.1:{}/repo.git", silent.port)).expect("url");
    let err = cache
        .fetch(
            &url,
            &main_branch(),
            &Auth::none(),
            Duration::from_millis(300),
        )
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
}

#[test]
fn a_missing_branch_is_reported_by_name() {
    let origin = Origin::new(&[("a", "1")]);
    let (_dir, cache) = new_cache();
    let err = fetch(
        &cache,
        &origin.file_url(),
        &GitRef::branch("nope").expect("valid"),
        &Auth::none(),
    )
    .expect_err("missing branch");
    assert!(err.to_string().contains("branch 'nope'"), "{err}");
}

#[test]
fn https_is_trusted_through_the_secret_ca_certificate() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let (https, ca_pem) = support::lighttpd_tls(&origin.repos_root(), "flux", "tls-pass");
    let url = format!("https://127.0.0.1:{}/basic/origin.git", https.port);

    let (_dir, cache) = new_cache();
    let auth = Auth::basic("flux", "tls-pass").with_ca_cert(ca_pem.into_bytes());
    let revision =
        fetch(&cache, &url, &main_branch(), &auth).expect("fetch over https with ca.crt");
    assert_eq!(revision, format!("main@sha1:{}", origin.head()));

    let (_dir2, cache2) = new_cache();
    let err = fetch(
        &cache2,
        &url,
        &main_branch(),
        &Auth::basic("flux", "tls-pass"),
    )
    .expect_err("unknown CA");
    assert!(!err.is_terminal(), "{err}");
}

#[test]
fn an_encrypted_ssh_key_is_unlocked_with_the_secret_password() {
    let origin = Origin::new(&[("app.yaml", "v: 1\n")]);
    let sshd = support::sshd();
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.server.port,
        origin.bare.display()
    );
    let secret = |password: &str| {
        let data: std::collections::BTreeMap<String, Vec<u8>> = [
            ("identity", sshd.encrypted_identity.clone()),
            ("known_hosts", sshd.known_hosts.clone()),
            ("password", password.as_bytes().to_vec()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Auth::from_secret_data(&data).expect("valid secret")
    };
    let (_dir, cache) = new_cache();
    let revision = fetch(
        &cache,
        &url,
        &main_branch(),
        &secret(support::ENCRYPTED_KEY_PASSPHRASE),
    )
    .expect("fetch with an encrypted key");
    assert_eq!(revision, format!("main@sha1:{}", origin.head()));

    let (_dir2, cache2) = new_cache();
    let err = fetch(&cache2, &url, &main_branch(), &secret("not-the-passphrase"))
        .expect_err("bad passphrase");
    assert!(
        !agent::source::git::error_chain(&err).contains("not-the-passphrase"),
        "{err}"
    );
}
