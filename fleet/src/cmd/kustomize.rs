//! `flotilla kustomize DIR`: the native kustomize engine, printing what `kubectl kustomize` prints.
//!
//! The command is judged against `kubectl kustomize` as a whole process, and most builds take
//! well under a millisecond, so [`main`] starts it without the rest of the command line (clap's
//! tree of every subcommand) or the process set-up the servers need (TLS provider, logging).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches};

#[derive(Debug, Args)]
pub struct KustomizeArgs {
    /// The directory holding kustomization.yaml (or plain manifests, as Flux allows).
    pub dir: PathBuf,
    /// Build a directory without a kustomization file the way Flux does (list its manifests).
    #[arg(long)]
    pub flux: bool,
}

// `flotilla kustomize` on its own: the same arguments, help and errors as the subcommand of the
// full command line (a test holds them equal), without building the others.
#[derive(Debug, clap::Parser)]
#[command(
    name = "kustomize",
    about = "Build a kustomization directory and print it, as `kubectl kustomize DIR` does",
    long_about = None
)]
struct Standalone {
    #[command(flatten)]
    args: KustomizeArgs,
}

/// Runs `flotilla kustomize ...` given the whole command line (`argv[0]`, `kustomize`, then the
/// subcommand's arguments) and turns its outcome into an exit code, as `cli::main` does.
pub fn main(mut argv: impl Iterator<Item = OsString>) -> ExitCode {
    let program = argv
        .next()
        .map(PathBuf::from)
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "flotilla".into());
    let matches = standalone_command(&program).get_matches_from(argv);
    let args = match Standalone::from_arg_matches(&matches) {
        Ok(standalone) => standalone.args,
        Err(error) => error.exit(),
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", crate::cmd::describe(&error));
            ExitCode::FAILURE
        }
    }
}

fn standalone_command(program: &str) -> clap::Command {
    Standalone::command().bin_name(format!("{program} kustomize"))
}

fn build(root: &Path, entry: &Path, flux: bool) -> Result<String, kustomize::Error> {
    let fs = kustomize::DiskFs::new(root)?;
    let opts = kustomize::Options {
        generate_missing_kustomization: flux,
        ..Default::default()
    };
    let built = kustomize::build_with_warnings(&fs, &entry.to_string_lossy(), &opts)?;
    // kubectl reports deprecated kustomization fields on stderr.
    for w in &built.warnings {
        eprintln!("{w}");
    }
    kustomize::print(&built.objects)
}

pub fn run(args: KustomizeArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", args.dir.display()))?;
    // Read below the working directory when the build stays there (errors then name paths
    // relative to it); like kubectl, fall back to the whole disk when bases live elsewhere.
    let cwd = std::env::current_dir().and_then(|d| d.canonicalize()).ok();
    let below_cwd = cwd.as_deref().and_then(|c| {
        dir.strip_prefix(c)
            .ok()
            .map(|rel| (c.to_path_buf(), rel.to_path_buf()))
    });
    let disk_root = || {
        (
            PathBuf::from("/"),
            dir.strip_prefix("/").unwrap_or(&dir).to_path_buf(),
        )
    };
    let out = match below_cwd {
        Some((root, entry)) => match build(&root, &entry, args.flux) {
            Err(e) if e.is_outside_root() => {
                let (root, entry) = disk_root();
                build(&root, &entry, args.flux)
            }
            other => other,
        },
        None => {
            let (root, entry) = disk_root();
            build(&root, &entry, args.flux)
        }
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    fn subcommand_of_full_cli() -> clap::Command {
        let mut cli = Cli::command().bin_name("flotilla");
        cli.build();
        cli.find_subcommand("kustomize")
            .expect("the CLI has a kustomize subcommand")
            .clone()
    }

    #[test]
    fn standalone_help_is_the_subcommands_help() {
        let mut full = subcommand_of_full_cli();
        let mut alone = standalone_command("flotilla");
        alone.build();
        assert_eq!(
            alone.render_help().to_string(),
            full.render_help().to_string()
        );
        assert_eq!(
            alone.render_long_help().to_string(),
            full.render_long_help().to_string()
        );
    }

    #[test]
    fn standalone_errors_are_the_subcommands_errors() {
        for args in [
            &["kustomize"][..],
            &["kustomize", "a", "b"],
            &["kustomize", "--flux", "--version"],
            &["kustomize", "--nope", "dir"],
        ] {
            let full = Cli::command()
                .try_get_matches_from(std::iter::once("flotilla").chain(args.iter().copied()))
                .expect_err("the full CLI refuses it");
            let alone = standalone_command("flotilla")
                .try_get_matches_from(args.iter().copied())
                .expect_err("the standalone command refuses it");
            assert_eq!(alone.kind(), full.kind(), "{args:?}");
            assert_eq!(
                alone.render().to_string(),
                full.render().to_string(),
                "{args:?}"
            );
        }
    }

    #[test]
    fn standalone_parses_what_the_subcommand_parses() {
        let matches = standalone_command("flotilla")
            .try_get_matches_from(["kustomize", "--flux", "some/dir"])
            .expect("parses");
        let parsed = Standalone::from_arg_matches(&matches).expect("parses");
        assert!(parsed.args.flux);
        assert_eq!(parsed.args.dir, PathBuf::from("some/dir"));
    }
}
