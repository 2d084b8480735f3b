//! `flotilla cluster add|remove`: register a cluster and issue its client certificate, or
//! remove it and revoke every certificate it had.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use proto::pki::{Identity, IssuedCert, validate_name};

use crate::home::{FleetHome, write_file};
use crate::registry::{CertificateRecord, FileRegistry, KubeRegistry, Registration, Registry};

/// Where registrations live: a management cluster when a kubeconfig is given, else the data
/// directory's clusters.json.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Kubeconfig of the management cluster that stores `Cluster` objects (kubesim with
    /// --data-dir locally). Without it, registrations live in DIR/clusters.json.
    #[arg(long, env = "FLOTILLA_MANAGEMENT_KUBECONFIG")]
    pub management_kubeconfig: Option<PathBuf>,
    /// The management cluster namespace of the fleet's objects.
    #[arg(long, default_value = crate::registry::DEFAULT_NAMESPACE)]
    pub fleet_namespace: String,
}

impl RegistryArgs {
    /// Opens the registry these options name (installing the CRD in a management cluster).
    pub async fn open(&self, home: &FleetHome) -> anyhow::Result<Arc<dyn Registry>> {
        match &self.management_kubeconfig {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let registry = KubeRegistry::from_kubeconfig(&text, &self.fleet_namespace).await?;
                registry.install().await?;
                Ok(Arc::new(registry))
            }
            None => Ok(Arc::new(registry(home))),
        }
    }
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Register a cluster and issue its agent's client certificate.
    Add(AddArgs),
    /// Remove a cluster; the fleet refuses its certificates from then on.
    Remove(RemoveArgs),
}

/// How `cluster add` hands over the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CertOutput {
    /// A Kubernetes Secret manifest (type kubernetes.io/tls, plus ca.crt) on stdout.
    Secret,
    /// tls.crt, tls.key and ca.crt in --out-dir.
    Files,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The cluster's name: its identity in the fleet.
    pub name: String,
    /// A label, key=value. Repeatable.
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// How to hand over the certificate.
    #[arg(long, value_enum, default_value = "secret")]
    pub output: CertOutput,
    /// Where --output files writes (default ./NAME).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// The Secret's namespace.
    #[arg(long, default_value = "flotilla-system")]
    pub namespace: String,
    /// The Secret's name.
    #[arg(long, default_value = "flotilla-fleet-client")]
    pub secret_name: String,
    /// How long the certificate is valid, in days.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=825))]
    pub validity_days: u64,
    /// Issue another certificate to a registered cluster (rotation): the old one keeps
    /// working until it expires or the cluster is removed.
    #[arg(long)]
    pub rotate: bool,
    /// The fleet's data directory.
    #[arg(long, env = "FLOTILLA_HOME", default_value_os_t = FleetHome::default_dir())]
    pub dir: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The cluster to remove.
    pub name: String,
    /// The fleet's data directory.
    #[arg(long, env = "FLOTILLA_HOME", default_value_os_t = FleetHome::default_dir())]
    pub dir: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not key=value"))?;
    if k.is_empty() {
        return Err(format!("{text:?} has an empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The registry of a data directory.
pub fn registry(home: &FleetHome) -> FileRegistry {
    FileRegistry::new(home.path("clusters.json"))
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.command {
        ClusterCommand::Add(add) => runtime.block_on(add_cluster(add)),
        ClusterCommand::Remove(remove) => runtime.block_on(remove_cluster(remove)),
    }
}

async fn add_cluster(args: AddArgs) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let home = FleetHome::new(&args.dir);
    let ca = home.ca()?;
    let issued = ca.issue_client(
        &Identity::Cluster(args.name.clone()),
        Duration::from_secs(args.validity_days * 86_400),
    )?;
    let now = chrono::Utc::now();
    let registration = Registration {
        name: args.name.clone(),
        labels: args.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        certificates: vec![CertificateRecord {
            fingerprint: issued.fingerprint.clone(),
            issued_at: now,
            not_after: issued.not_after,
        }],
        registered_at: now,
    };
    args.registry
        .open(&home)
        .await?
        .register(registration, args.rotate)
        .await?;
    eprintln!(
        "cluster {} {}; certificate {} valid until {}",
        args.name,
        if args.rotate {
            "issued a new certificate"
        } else {
            "registered"
        },
        issued.fingerprint,
        issued.not_after.to_rfc3339()
    );
    match args.output {
        CertOutput::Secret => print!("{}", secret_manifest(&args, &issued, ca.cert_pem())?),
        CertOutput::Files => {
            let dir = args
                .out_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(&args.name));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write_file(&dir.join("tls.crt"), &issued.cert_pem, 0o644)?;
            write_file(&dir.join("tls.key"), issued.key_pem.expose(), 0o600)?;
            write_file(&dir.join("ca.crt"), ca.cert_pem(), 0o644)?;
            eprintln!(
                "wrote {0}/tls.crt, {0}/tls.key (mode 0600) and {0}/ca.crt",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The agent's Secret, as `kubectl create secret tls` would write it, plus the CA.
fn secret_manifest(args: &AddArgs, issued: &IssuedCert, ca_pem: &str) -> anyhow::Result<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": args.secret_name,
            "namespace": args.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "flotilla",
                "fleet.flotilla.io/cluster": args.name,
            },
        },
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": b64(ca_pem),
            "tls.crt": b64(&issued.cert_pem),
            "tls.key": b64(issued.key_pem.expose()),
        },
    });
    Ok(serde_saphyr::to_string(&secret)?)
}

async fn remove_cluster(args: RemoveArgs) -> anyhow::Result<()> {
    let home = FleetHome::new(&args.dir);
    if !home.path("ca.crt").exists() {
        bail!(
            "{} holds no fleet; run `flotilla fleet init` first",
            args.dir.display()
        );
    }
    let removed = args.registry.open(&home).await?.remove(&args.name).await?;
    eprintln!(
        "cluster {} removed; {} certificate(s) revoked (a running fleet refuses them within its registry poll interval)",
        removed.name,
        removed.certificates.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_must_be_key_value() {
        assert_eq!(parse_label("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(parse_label("tier="), Ok(("tier".into(), String::new())));
        assert!(parse_label("env").is_err());
        assert!(parse_label("=x").is_err());
    }
}
