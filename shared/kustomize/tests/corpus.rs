//! Every kustomize case of the conformance corpus (`$FLOTILLA_CORPUS/kustomize`), built and
//! compared byte for byte with kubectl's output (or its error).

mod common;

use std::path::{Path, PathBuf};

use kustomize::{DiskFs, Options, build_with_warnings, print};

fn corpus_dir() -> PathBuf {
    let base = std::env::var_os("FLOTILLA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    let dir = base.join("kustomize");
    assert!(
        dir.is_dir(),
        "kustomize corpus not found at {} (set FLOTILLA_CORPUS)",
        dir.display()
    );
    dir
}

fn run_case(dir: &Path) -> Result<(), String> {
    let case: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("case.json")).map_err(|e| format!("case.json: {e}"))?,
    )
    .map_err(|e| format!("case.json: {e}"))?;
    let entry = case["entry"].as_str().ok_or("case.json has no entry")?;
    let fs = DiskFs::new(dir).map_err(|e| e.to_string())?;
    let opts = Options {
        generate_missing_kustomization: case["no_kustomization"].as_bool() == Some(true),
        ..Default::default()
    };
    let built = build_with_warnings(&fs, entry, &opts);
    if let Ok(b) = &built {
        // kubectl's deprecation warnings (its klog info lines are not ours to print).
        let want: Vec<&str> = case["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|x| x.as_str())
                    .filter(|x| x.starts_with("# Warning"))
                    .collect()
            })
            .unwrap_or_default();
        if want != b.warnings {
            return Err(format!(
                "warnings differ: want {want:?}, got {:?}",
                b.warnings
            ));
        }
    }
    let result = built.and_then(|b| print(&b.objects));
    if case["expect"].as_str() == Some("error") {
        let want = case["error_contains"].as_str().unwrap_or("");
        return match result {
            Ok(_) => Err(format!(
                "expected an error containing {want:?}, build succeeded"
            )),
            Err(e) if e.to_string().contains(want) => Ok(()),
            Err(e) => Err(format!("error {:?} lacks {want:?}", e.to_string())),
        };
    }
    let want = std::fs::read_to_string(dir.join("expected.yaml")).map_err(|e| e.to_string())?;
    match result {
        Ok(got) if got == want => Ok(()),
        Ok(got) => Err(common::first_difference(&want, &got)),
        Err(e) => Err(format!("build failed: {e}")),
    }
}

/// One test per case directory: `cargo test -p kustomize --test corpus -- NAME`.
fn main() -> std::process::ExitCode {
    common::run_cases(&corpus_dir(), run_case)
}
