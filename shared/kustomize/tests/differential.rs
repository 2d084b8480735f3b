//! Our own kustomize cases (`tests/cases/<name>/`), each built by `kubectl kustomize` and by
//! the engine in the same run and compared byte for byte: the corpus shows kustomize's
//! behaviour on the cases it has; these probe the same features on inputs it does not have.
//!
//! A case directory is the repository root. Optional files beside the tree:
//! `ENTRY` (the directory to build, relative to the root; `.` when absent) and
//! `ERROR_CONTAINS` (kubectl must fail, and both errors must contain this text).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use kustomize::{DiskFs, Options, build_with_warnings, print};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn read_optional(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
}

struct Kubectl {
    succeeded: bool,
    stdout: String,
    stderr: String,
}

fn kubectl_kustomize(root: &Path, entry: &str) -> Result<Kubectl, String> {
    let output = Command::new("kubectl")
        .args(["kustomize", entry])
        .current_dir(root)
        .output()
        .map_err(|e| format!("kubectl cannot be run (it is the reference here): {e}"))?;
    Ok(Kubectl {
        succeeded: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn run_case(root: &Path) -> Result<(), String> {
    let entry = read_optional(&root.join("ENTRY")).unwrap_or_else(|| ".".to_string());
    let error_contains = read_optional(&root.join("ERROR_CONTAINS"));
    let reference = kubectl_kustomize(root, &entry)?;
    let fs = DiskFs::new(root).map_err(|e| e.to_string())?;
    let built = build_with_warnings(&fs, &entry, &Options::default());

    if !reference.succeeded {
        let Some(want) = error_contains else {
            return Err(format!(
                "kubectl failed but the case has no ERROR_CONTAINS: {}",
                reference.stderr
            ));
        };
        if !reference.stderr.contains(&want) {
            return Err(format!(
                "kubectl's error lacks {want:?}: {}",
                reference.stderr
            ));
        }
        return match built.and_then(|b| print(&b.objects)) {
            Ok(_) => Err(format!("kubectl failed ({want:?}), our build succeeded")),
            Err(e) if e.to_string().contains(&want) => Ok(()),
            Err(e) => Err(format!("our error {:?} lacks {want:?}", e.to_string())),
        };
    }
    if let Some(want) = error_contains {
        return Err(format!(
            "kubectl succeeded although the case expects {want:?}"
        ));
    }
    let built = built.map_err(|e| format!("kubectl succeeded, our build failed: {e}"))?;
    let want_warnings: Vec<&str> = reference
        .stderr
        .lines()
        .filter(|line| line.starts_with("# Warning"))
        .collect();
    if want_warnings != built.warnings {
        return Err(format!(
            "warnings differ: kubectl {want_warnings:?}, ours {:?}",
            built.warnings
        ));
    }
    let got = print(&built.objects).map_err(|e| format!("print: {e}"))?;
    if got == reference.stdout {
        Ok(())
    } else {
        Err(common::first_difference(&reference.stdout, &got))
    }
}

/// One test per case directory: `cargo test -p kustomize --test differential -- NAME`.
fn main() -> std::process::ExitCode {
    common::run_cases(&cases_dir(), run_case)
}
