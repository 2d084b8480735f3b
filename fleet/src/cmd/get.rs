//! `flotilla get clusters|kustomizations|sources git`: Flux-like tables (or JSON/YAML) from
//! the fleet's API.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use proto::ObjectStatus;
use serde::Serialize;

use crate::client::ApiClient;
use crate::home::FleetHome;
use crate::server::api::ClusterObject;
use crate::server::state::ClusterView;

/// How to reach the API; shared by every command that talks to a running fleet.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The fleet API's URL.
    #[arg(
        long,
        env = "FLOTILLA_SERVER",
        default_value = "https://localhost:9444",
        global = true
    )]
    pub server: String,
    /// The data directory holding ca.crt and the admin certificate.
    #[arg(long, env = "FLOTILLA_HOME", default_value_os_t = FleetHome::default_dir(), global = true)]
    pub dir: PathBuf,
    /// Authenticate with this bearer token instead of the admin certificate.
    #[arg(long, env = "FLOTILLA_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

impl ApiArgs {
    /// The client these options describe.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let token = self.token.clone().map(proto::pki::SecretPem::new);
        Ok(ApiClient::from_home(
            &self.server,
            &FleetHome::new(&self.dir),
            token,
        )?)
    }
}

/// Output formats, as `flux get` and `kubectl get` spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(subcommand)]
    pub what: GetWhat,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    pub output: Format,
    /// After listing, keep printing changes as they happen (one line or document each).
    #[arg(short = 'w', long, global = true)]
    pub watch: bool,
}

#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// The fleet's clusters and their connection state.
    Clusters,
    /// Kustomizations on one cluster or all of them.
    #[command(visible_alias = "ks", alias = "kustomization")]
    Kustomizations(ObjectArgs),
    /// Sources.
    #[command(subcommand)]
    Sources(SourceKind),
}

#[derive(Debug, Subcommand)]
pub enum SourceKind {
    /// GitRepositories on one cluster or all of them.
    Git(ObjectArgs),
}

#[derive(Debug, Args)]
pub struct ObjectArgs {
    /// The cluster to list.
    #[arg(
        long,
        conflicts_with = "all_clusters",
        required_unless_present = "all_clusters"
    )]
    pub cluster: Option<String>,
    /// List every cluster.
    #[arg(short = 'A', long = "all-clusters")]
    pub all_clusters: bool,
    /// Only this namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

pub fn run(args: GetArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut listed = 0;
        let text = match &args.what {
            GetWhat::Clusters => {
                let clusters: Vec<ClusterView> = client.get("/api/v1/clusters").await?;
                listed = clusters.len();
                render(args.output, &clusters, || clusters_table(&clusters))?
            }
            GetWhat::Kustomizations(o) => objects(&client, "Kustomization", o, args.output).await?,
            GetWhat::Sources(SourceKind::Git(o)) => {
                objects(&client, "GitRepository", o, args.output).await?
            }
        };
        print!("{text}");
        if args.watch {
            watch(&client, &args, listed).await?;
        }
        Ok(())
    })
}

/// Prints every later change that matches what was listed, as `kubectl get --watch` does.
async fn watch(client: &ApiClient, args: &GetArgs, listed_clusters: usize) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;

    let (kind, filter) = match &args.what {
        GetWhat::Clusters => (None, None),
        GetWhat::Kustomizations(o) => (Some("Kustomization"), Some(o)),
        GetWhat::Sources(SourceKind::Git(o)) => (Some("GitRepository"), Some(o)),
    };
    let events = client.events().await?;
    futures::pin_mut!(events);
    // The stream opens with the current clusters, which were just listed.
    let mut to_skip = listed_clusters;
    while let Some(event) = events.next().await {
        let event = event?;
        let line = match (kind, event.name.as_str()) {
            (None, "cluster") => {
                if to_skip > 0 {
                    to_skip -= 1;
                    continue;
                }
                let view: ClusterView = serde_json::from_str(&event.data)?;
                render(args.output, &view, || {
                    body(&clusters_table(std::slice::from_ref(&view)))
                })?
            }
            (Some(kind), "object") => {
                #[derive(serde::Deserialize)]
                struct Changed {
                    cluster: String,
                    status: ObjectStatus,
                }
                let changed: Changed = serde_json::from_str(&event.data)?;
                let Some(filter) = filter else { continue };
                let wanted = changed.status.object.kind == kind
                    && filter
                        .cluster
                        .as_ref()
                        .is_none_or(|c| c == &changed.cluster)
                    && filter
                        .namespace
                        .as_ref()
                        .is_none_or(|n| n == &changed.status.object.namespace);
                if !wanted {
                    continue;
                }
                let item = ClusterObject {
                    cluster: changed.cluster,
                    status: changed.status,
                };
                render(args.output, &item, || {
                    body(&objects_table(
                        std::slice::from_ref(&item),
                        filter.cluster.is_none(),
                    ))
                })?
            }
            _ => continue,
        };
        print!("{line}");
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// A table without its header line.
fn body(table: &str) -> String {
    table
        .split_once('\n')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default()
}

async fn objects(
    client: &ApiClient,
    kind: &str,
    args: &ObjectArgs,
    format: Format,
) -> anyhow::Result<String> {
    let mut items: Vec<ClusterObject> = match &args.cluster {
        Some(cluster) => {
            let statuses: Vec<ObjectStatus> = client
                .get(&format!("/api/v1/clusters/{cluster}/objects?kind={kind}"))
                .await?;
            statuses
                .into_iter()
                .map(|status| ClusterObject {
                    cluster: cluster.clone(),
                    status,
                })
                .collect()
        }
        None => client.get(&format!("/api/v1/objects?kind={kind}")).await?,
    };
    if let Some(ns) = &args.namespace {
        items.retain(|i| &i.status.object.namespace == ns);
    }
    render(format, &items, || {
        objects_table(&items, args.cluster.is_none())
    })
}

fn render<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table => table(),
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_saphyr::to_string(value)?,
    })
}

/// `flotilla get clusters`.
pub fn clusters_table(clusters: &[ClusterView]) -> String {
    let mut rows = vec![
        ["NAME", "STATE", "AGENT", "READY", "LAST SEEN", "LABELS"]
            .map(String::from)
            .to_vec(),
    ];
    for c in clusters {
        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(vec![
            c.name.clone(),
            c.state.as_str().to_string(),
            c.agent_version.clone().unwrap_or_else(|| "-".into()),
            format!("{}/{}", c.ready, c.objects),
            c.last_seen
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "-".into()),
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
        ]);
    }
    table(&rows)
}

/// `flotilla get kustomizations`: Flux's columns, with the cluster (and namespace) first
/// when listing several.
pub fn objects_table(items: &[ClusterObject], all_clusters: bool) -> String {
    let mut header = vec![];
    if all_clusters {
        header.push("CLUSTER");
    }
    header.extend([
        "NAMESPACE",
        "NAME",
        "REVISION",
        "SUSPENDED",
        "READY",
        "MESSAGE",
    ]);
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for i in items {
        let s = &i.status;
        let mut row = vec![];
        if all_clusters {
            row.push(i.cluster.clone());
        }
        row.extend([
            s.object.namespace.clone(),
            s.object.name.clone(),
            s.revision.clone().unwrap_or_default(),
            if s.suspended { "True" } else { "False" }.to_string(),
            s.ready.to_string(),
            s.message.replace('\n', " "),
        ]);
        rows.push(row);
    }
    table(&rows)
}

/// Aligns columns with three spaces between them; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{ObjectRef, Readiness};

    #[test]
    fn object_tables_use_fluxs_columns_and_align() {
        let item = |cluster: &str, name: &str| ClusterObject {
            cluster: cluster.into(),
            status: ObjectStatus {
                object: ObjectRef {
                    kind: "Kustomization".into(),
                    namespace: "flux-system".into(),
                    name: name.into(),
                },
                ready: Readiness::True,
                revision: Some("main@sha1:abc".into()),
                suspended: false,
                message: "Applied revision: main@sha1:abc".into(),
            },
        };
        let text = objects_table(
            &[
                item("staging", "apps"),
                item("production-clone", "infrastructure"),
            ],
            true,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CLUSTER            NAMESPACE     NAME             REVISION        SUSPENDED   READY   MESSAGE"), "{text}");
        assert!(lines[1].starts_with("staging            flux-system   apps             main@sha1:abc   False       True    Applied"), "{text}");
        let single = objects_table(&[item("staging", "apps")], false);
        assert!(single.starts_with("NAMESPACE "), "{single}");
    }
}
