//! Benchmark: our incremental fetch + artifact against `git fetch` + `git archive`, on a
//! repository with 5,000 files and 1,000 commits receiving one new commit at a time.
//!
//! Run with `cargo bench -p agent --bench git_fetch`. Prints both medians and the ratio.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::source::artifact::{self, ArchiveLimits, ArtifactStore, SourceKey};
use agent::source::git::{Auth, GitCache, GitRef, RepoUrl};

const FILES: usize = 5_000;
const COMMITS: usize = 1_000;
const ROUNDS: usize = 7;

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

/// Feeds a fast-import stream that creates commits on `main`.
fn fast_import(
    bare: &Path,
    first_mark: usize,
    commits: usize,
    all_files_first: bool,
    parent: bool,
) {
    let mut child = git(bare)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
    for i in 0..commits {
        let n = first_mark + i;
        writeln!(stdin, "commit refs/heads/main").expect("write");
        writeln!(
            stdin,
            "committer Bench <bench@example.com> {} +0000",
            1_600_000_000 + n
        )
        .expect("write");
        let msg = format!("commit {n}");
        writeln!(stdin, "data {}\n{msg}", msg.len()).expect("write");
        if i == 0 && parent {
            writeln!(stdin, "from refs/heads/main^0").expect("write");
        }
        let touched: Vec<usize> = if i == 0 && all_files_first {
            (0..FILES).collect()
        } else {
            (0..5).map(|k| (n * 7 + k * 997) % FILES).collect()
        };
        for f in touched {
            let body = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{f}\ndata:\n  rev: \"{n}\"\n  payload: \"{}\"\n",
                "x".repeat(200 + f % 300)
            );
            writeln!(
                stdin,
                "M 100644 inline apps/team-{:02}/cm-{f:05}.yaml\ndata {}\n{body}",
                f % 50,
                body.len()
            )
            .expect("write");
        }
        writeln!(stdin).expect("write");
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success(), "fast-import failed");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = dir.path().join("origin.git");
    std::fs::create_dir_all(&bare).expect("mkdir");
    run(git(&bare).args(["init", "-q", "--bare", "-b", "main"]));
    eprintln!("building origin: {FILES} files, {COMMITS} commits ...");
    fast_import(&bare, 0, COMMITS, true, false);
    run(git(&bare).args(["repack", "-adq"]));

    let url_text = format!("file://{}", bare.display());
    let url = RepoUrl::parse(&url_text).expect("url");
    let reference = GitRef::branch("main").expect("branch");
    let cache = GitCache::new(dir.path().join("ours-cache"));
    let store = ArtifactStore::open(dir.path().join("ours-store"), 3).expect("store");
    let key = SourceKey::new("gitrepository", "bench", "repo").expect("key");
    let peer = dir.path().join("peer.git");
    let timeout = Duration::from_secs(600);

    // Initial clones, not measured.
    let resolved = cache
        .fetch(&url, &reference, &Auth::none(), timeout)
        .expect("initial fetch");
    let repo = cache.repository().expect("repo");
    artifact::package(
        &store,
        &key,
        &repo,
        resolved.commit,
        &resolved.revision,
        None,
        ArchiveLimits::default(),
    )
    .expect("initial artifact");
    run(git(dir.path())
        .args(["clone", "-q", "--bare", &url_text])
        .arg(&peer));

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_fetch, mut theirs_fetch) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        fast_import(&bare, COMMITS + round, 1, false, true);

        let start = Instant::now();
        let resolved = cache
            .fetch(&url, &reference, &Auth::none(), timeout)
            .expect("fetch");
        ours_fetch.push(start.elapsed());
        let repo = cache.repository().expect("repo");
        let stored = artifact::package(
            &store,
            &key,
            &repo,
            resolved.commit,
            &resolved.revision,
            None,
            ArchiveLimits::default(),
        )
        .expect("artifact");
        ours.push(start.elapsed());

        let start = Instant::now();
        run(git(&peer).args(["fetch", "-q", "origin", "+refs/heads/main:refs/heads/main"]));
        theirs_fetch.push(start.elapsed());
        let out = dir.path().join("peer.tar.gz");
        run(git(&peer)
            .args(["archive", "--format=tar.gz", "-o"])
            .arg(&out)
            .arg("main"));
        theirs.push(start.elapsed());
        if round == 0 {
            let size = std::fs::metadata(&out).expect("peer archive").len();
            eprintln!(
                "artifact sizes: ours {} bytes, git archive {size} bytes",
                stored.size
            );
        }
    }
    let (ours, theirs) = (median(ours), median(theirs));
    let (ours_fetch, theirs_fetch) = (median(ours_fetch), median(theirs_fetch));
    println!("one new commit on {FILES} files / {COMMITS} commits, median of {ROUNDS} rounds:");
    println!(
        "  flotilla (gix fetch + artifact): {:>8.1} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  git fetch + git archive:         {:>8.1} ms",
        theirs.as_secs_f64() * 1e3
    );
    println!(
        "    of which fetch: flotilla {:.1} ms, git {:.1} ms",
        ours_fetch.as_secs_f64() * 1e3,
        theirs_fetch.as_secs_f64() * 1e3
    );
    println!(
        "  ratio flotilla / git:            {:>8.2}",
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}
