//! `flotilla`: the command line. `flotilla kustomize` runs here, in a binary that holds little
//! more than the kustomize engine: it is a short-lived process judged against `kubectl
//! kustomize`, and a binary's start-up grows with everything linked into it (the full one
//! spends about 0.7 ms applying its own relocations, most of a small build). Every other
//! command belongs to `flotilla-fleet`, found beside this binary and run in its place with
//! the same arguments.

use std::ffi::OsString;
use std::process::ExitCode;

const FULL: &str = "flotilla-fleet";

fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|arg| arg == "kustomize") {
        return fleet::cmd::kustomize::main(argv.into_iter());
    }
    let Some(full) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(FULL)))
        .filter(|path| path.is_file())
    else {
        eprintln!(
            "error: the fleet commands live in `{FULL}`, which is not beside this binary; \
             build both with `cargo build --release -p fleet` (or install both)"
        );
        return ExitCode::from(127);
    };
    let program = if argv.is_empty() {
        OsString::from("flotilla")
    } else {
        argv.remove(0)
    };
    run(full, program, argv)
}

#[cfg(unix)]
fn run(full: std::path::PathBuf, program: OsString, args: Vec<OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    // The same process continues as the full binary; it still calls itself `flotilla`.
    let error = std::process::Command::new(&full)
        .arg0(program)
        .args(args)
        .exec();
    eprintln!("error: running {}: {error}", full.display());
    ExitCode::from(126)
}

#[cfg(not(unix))]
fn run(full: std::path::PathBuf, _program: OsString, args: Vec<OsString>) -> ExitCode {
    match std::process::Command::new(&full).args(args).status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("error: running {}: {error}", full.display());
            ExitCode::from(126)
        }
    }
}
