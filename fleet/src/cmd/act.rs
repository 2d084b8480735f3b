//! `flotilla reconcile|suspend|resume kustomization NAME --cluster C`: relay a command to a
//! cluster's agent through the fleet and print its answer, as `flux reconcile` does.

use clap::{Args, Subcommand};
use proto::{Ack, CommandAction};

use super::get::ApiArgs;

#[derive(Debug, Args)]
pub struct ActArgs {
    #[command(subcommand)]
    pub kind: ActKind,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum ActKind {
    /// A Kustomization.
    #[command(visible_alias = "ks")]
    Kustomization(Target),
    /// A source.
    #[command(subcommand)]
    Source(SourceTarget),
}

#[derive(Debug, Subcommand)]
pub enum SourceTarget {
    /// A GitRepository.
    Git(Target),
}

#[derive(Debug, Args)]
pub struct Target {
    /// The object's name.
    pub name: String,
    /// The cluster it lives on.
    #[arg(long)]
    pub cluster: String,
    /// The object's namespace.
    #[arg(short = 'n', long, default_value = "flux-system")]
    pub namespace: String,
    /// Reconcile the Kustomization's source first (reconcile only).
    #[arg(long)]
    pub with_source: bool,
}

pub fn run(action: CommandAction, args: ActArgs) -> anyhow::Result<()> {
    let (kind, target) = match &args.kind {
        ActKind::Kustomization(t) => ("Kustomization", t),
        ActKind::Source(SourceTarget::Git(t)) => ("GitRepository", t),
    };
    let client = args.api.client()?;
    let verb = match action {
        CommandAction::ReconcileNow => "reconcile",
        CommandAction::Suspend => "suspend",
        CommandAction::Resume => "resume",
    };
    if target.with_source && action != CommandAction::ReconcileNow {
        anyhow::bail!("--with-source only applies to reconcile");
    }
    let mut path = format!(
        "/api/v1/clusters/{}/objects/{kind}/{}/{}/{verb}",
        target.cluster, target.namespace, target.name
    );
    if target.with_source {
        path.push_str("?withSource=true");
    }
    eprintln!(
        "► {verb} {kind} {}/{} on cluster {}",
        target.namespace, target.name, target.cluster
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ack: Ack = runtime.block_on(client.post(&path))?;
    if !ack.ok {
        anyhow::bail!(
            "{verb} failed on cluster {}: {}",
            target.cluster,
            ack.message
        );
    }
    eprintln!(
        "✔ {}",
        if ack.message.is_empty() {
            "done"
        } else {
            &ack.message
        }
    );
    Ok(())
}
