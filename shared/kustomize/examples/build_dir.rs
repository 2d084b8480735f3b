//! Builds a kustomization and prints it: `cargo run --example build_dir -- ROOT [ENTRY] [RUNS]`
//! (ENTRY relative to ROOT, default ROOT itself).
//! With RUNS > 1, builds that many times and reports the mean time instead (for profiling).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: build_dir ROOT [ENTRY] [RUNS]");
        std::process::exit(2);
    };
    let entry = args.next().unwrap_or_default();
    let runs: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(1);
    let fs = match kustomize::DiskFs::new(&dir) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let opts = kustomize::Options {
        generate_missing_kustomization: true,
        ..Default::default()
    };
    let start = Instant::now();
    for i in 0..runs {
        match kustomize::build(&fs, &entry, &opts).and_then(|o| kustomize::print(&o)) {
            Ok(out) if runs == 1 => print!("{out}"),
            Ok(out) => {
                std::hint::black_box(out);
            }
            Err(e) => {
                eprintln!("error (run {i}): {e}");
                std::process::exit(1);
            }
        }
    }
    if runs > 1 {
        eprintln!(
            "{:.1} µs per build",
            start.elapsed().as_secs_f64() * 1e6 / f64::from(runs)
        );
    }
}
