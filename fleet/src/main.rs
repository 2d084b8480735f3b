//! `flotilla`: the fleet server and the command-line interface.

fn main() -> std::process::ExitCode {
    fleet::cli::main()
}
