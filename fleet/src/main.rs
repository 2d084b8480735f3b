//! `flotilla`: the fleet server and the command-line interface.

fn main() -> std::process::ExitCode {
    // `flotilla kustomize` goes straight to its command: it is a short-lived process.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "kustomize")
    {
        return fleet::cmd::kustomize::main(std::env::args_os());
    }
    fleet::cli::main()
}
