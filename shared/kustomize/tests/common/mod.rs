//! What the corpus and the differential tests share: one libtest trial per case directory and
//! the report of the first differing line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where two outputs first differ, for a failure message.
pub fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}: want {:?} got {:?}", i + 1, w, g);
        }
    }
    format!(
        "length: want {} lines, got {}",
        want.lines().count(),
        got.lines().count()
    )
}

/// Runs `check` on every directory of `cases`, one test each named after the directory (so
/// `cargo test -p kustomize --test NAME -- CASE` runs one).
pub fn run_cases(cases: &Path, check: fn(&Path) -> Result<(), String>) -> ExitCode {
    let arguments = libtest_mimic::Arguments::from_args();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(cases) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(error) => {
            eprintln!("{} cannot be read: {error}", cases.display());
            return ExitCode::FAILURE;
        }
    };
    dirs.sort();
    let trials = dirs
        .into_iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            libtest_mimic::Trial::test(name, move || check(&dir).map_err(Into::into))
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}
