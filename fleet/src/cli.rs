//! Command-line parsing and dispatch. Each subcommand lives in its own module under `cmd`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// Flotilla: GitOps for a fleet of Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole fleet on this machine: a Git repository, three simulated clusters, the
    /// fleet server and one agent per cluster.
    Demo(cmd::demo::DemoArgs),
    /// Build a kustomization directory and print it, as `kubectl kustomize DIR` does.
    Kustomize(cmd::kustomize::KustomizeArgs),
    /// Serve kubesim, a Kubernetes API test double, and write a kubeconfig for it.
    Sim(cmd::sim::SimArgs),
    /// Set up the fleet: `fleet init` creates its CA and credentials.
    Fleet(cmd::fleet::FleetArgs),
    /// Register or remove clusters and issue their agents' certificates.
    Cluster(cmd::cluster::ClusterArgs),
    /// Run the fleet server.
    Serve(cmd::serve::ServeArgs),
    /// Show clusters and their objects, as `flux get` does, fleet-wide.
    Get(cmd::get::GetArgs),
    /// Ask a cluster's agent, through the fleet, to reconcile an object now.
    Reconcile(cmd::act::ActArgs),
    /// Suspend an object's reconciliation on a cluster.
    Suspend(cmd::act::ActArgs),
    /// Resume an object's reconciliation on a cluster.
    Resume(cmd::act::ActArgs),
}

/// Parses the command line, runs the subcommand and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(_) => cmd::demo::init_process(),
        _ => cmd::init_process(),
    }
    let outcome = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Kustomize(args) => cmd::kustomize::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Fleet(args) => cmd::fleet::run(args),
        Command::Cluster(args) => cmd::cluster::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Get(args) => cmd::get::run(args),
        Command::Reconcile(args) => cmd::act::run(proto::CommandAction::ReconcileNow, args),
        Command::Suspend(args) => cmd::act::run(proto::CommandAction::Suspend, args),
        Command::Resume(args) => cmd::act::run(proto::CommandAction::Resume, args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", crate::cmd::describe(&error));
            ExitCode::FAILURE
        }
    }
}
