//! `flotilla-fleet`: the fleet server, the simulated clusters and every `flotilla` command.
//! `flotilla` runs `kustomize` itself and hands everything else to this binary.

fn main() -> std::process::ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "kustomize")
    {
        return fleet::cmd::kustomize::main(std::env::args_os());
    }
    fleet::cli::main()
}
