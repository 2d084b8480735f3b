//! Benchmark: for every corpus case, `flotilla kustomize` vs `kubectl kustomize` as whole
//! processes (same run, alternating), and our in-process build separately.
//!
//! Run: `cargo build --release -p fleet --bin flotilla && cargo bench -p kustomize --bench vs_kubectl`
//! Env: FLOTILLA_CORPUS (default ../shared/corpus), BENCH_RUNS (process runs per case, default 5),
//! KUBECTL (default `kubectl`), FLOTILLA (default target/release/flotilla, to compare builds).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kustomize::{DiskFs, Options, build, print};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_process(cmd: &mut Command, runs: usize) -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let ok = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        times.push(t.elapsed());
    }
    Some(median(times))
}

fn geomean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = std::env::var_os("FLOTILLA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"))
        .join("kustomize");
    let flotilla = std::env::var_os("FLOTILLA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/flotilla"));
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    assert!(corpus.is_dir(), "corpus not found at {}", corpus.display());
    assert!(
        flotilla.is_file(),
        "build {} first (cargo build --release -p fleet --bin flotilla)",
        flotilla.display()
    );

    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    let tmp = std::env::temp_dir().join(format!("kustomize-bench-{}", std::process::id()));

    println!(
        "{:<48} {:>10} {:>10} {:>8} {:>11}",
        "case", "ours ms", "kubectl ms", "ratio", "in-proc µs"
    );
    let (mut ratios, mut inproc) = (Vec::new(), Vec::new());
    // The first build of a process also loads the builtin tables (merge keys, field specs):
    // a whole process pays it, the in-process median does not.
    let mut first_build = None;
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(case.join("case.json")).expect("case.json");
        let meta: serde_json::Value = serde_json::from_str(&text).expect("case.json is JSON");
        if meta["expect"].as_str() == Some("error") {
            continue;
        }
        let entry = meta["entry"].as_str().expect("entry").to_string();
        let nokust = meta["no_kustomization"].as_bool() == Some(true);

        // In-process: median of many builds.
        let fs = DiskFs::new(case).expect("case dir");
        let opts = Options {
            generate_missing_kustomization: nokust,
            ..Default::default()
        };
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let out = build(&fs, &entry, &opts)
                .and_then(|o| print(&o))
                .expect("builds");
            std::hint::black_box(out);
            times.push(t.elapsed());
        }
        let first = times[0];
        let ours_inproc = median(times);
        first_build.get_or_insert((name.clone(), first, ours_inproc));

        // kubectl cannot build a directory without a kustomization: give it a copy holding
        // the kustomization Flux would generate.
        let (kdir, kentry) = if nokust {
            let dst = tmp.join(&name);
            let _ = std::fs::remove_dir_all(&dst);
            std::fs::create_dir_all(&dst).expect("tmp");
            let ok = Command::new("cp")
                .arg("-r")
                .arg(case.join("input"))
                .arg(&dst)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "copy {name}");
            let generated = meta["generated_kustomization"].as_str().unwrap_or("");
            std::fs::write(dst.join(&entry).join("kustomization.yaml"), generated)
                .expect("write kustomization");
            (dst, entry.clone())
        } else {
            (case.clone(), entry.clone())
        };
        let mut ours_cmd = Command::new(&flotilla);
        ours_cmd.current_dir(case).arg("kustomize").arg(&entry);
        if nokust {
            ours_cmd.arg("--flux");
        }
        let ours = time_process(&mut ours_cmd, runs);
        let theirs = time_process(
            Command::new(&kubectl)
                .current_dir(&kdir)
                .arg("kustomize")
                .arg(&kentry),
            runs,
        );
        match (ours, theirs) {
            (Some(o), Some(k)) => {
                let r = k.as_secs_f64() / o.as_secs_f64();
                ratios.push(r);
                inproc.push(ours_inproc.as_secs_f64() * 1e6);
                println!(
                    "{name:<48} {:>10.2} {:>10.2} {:>7.1}x {:>11.0}",
                    o.as_secs_f64() * 1e3,
                    k.as_secs_f64() * 1e3,
                    r,
                    ours_inproc.as_secs_f64() * 1e6
                );
            }
            _ => println!("{name:<48} (a process failed; skipped)"),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    inproc.sort_by(f64::total_cmp);
    println!(
        "\n{} cases: geometric-mean speedup {:.1}x as whole processes; in-process build median {:.0} µs, geometric mean {:.0} µs",
        ratios.len(),
        geomean(&ratios),
        inproc.get(inproc.len() / 2).copied().unwrap_or(f64::NAN),
        geomean(&inproc)
    );
    if let Some((name, first, later)) = first_build {
        println!(
            "{name}: first in-process build {:.0} µs (loads the builtin tables), later median {:.0} µs",
            first.as_secs_f64() * 1e6,
            later.as_secs_f64() * 1e6
        );
    }
}
