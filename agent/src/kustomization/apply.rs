//! The I/O half of a reconcile: server-side dry-run, apply, prune and health waits against
//! the API server, each returning a typed [`ChangeSet`].
//!
//! # Guarantees
//! - [`Applier::prepare`] dry-runs every object before [`Applier::apply`] changes anything;
//!   an object the server refuses stops the reconcile with nothing applied.
//! - Objects whose dry-run result equals the live object are reported `unchanged` and not
//!   written, so a reconcile without changes writes nothing but status.
//! - Applies use the field manager given (`flotilla`) with `force`, as Flux takes ownership
//!   of the fields it applies.
//! - Pruning deletes only objects that carry this Kustomization's owner labels and do not
//!   opt out (`prune: disabled`, `reconcile: disabled`, `ssa: Ignore`).
//! - Kinds are applied in Flux's order, one kind after the other; the objects of one kind
//!   are applied concurrently (at most [`APPLY_CONCURRENCY`] requests in flight).
//!
//! # Assumptions
//! Transient API failures (5xx, 429, broken connections) are retried a few times here; if
//! they persist, the error reaches the actor, which retries the whole reconcile later.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use api::inventory::ObjectId;
use dashmap::DashMap;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use serde_json::Value;

use super::drift;
use super::plan::{self, ApplyPolicy, DesiredObject};
use crate::health::{self, HealthStatus};

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Deleted,
    Skipped,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
        })
    }
}

/// One object and what happened to it, shown as Flux does: `Deployment/default/podinfo configured`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub subject: String,
    pub action: Action,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.subject, self.action)
    }
}

/// The changes of one reconcile, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet(pub Vec<Change>);

impl ChangeSet {
    /// Changes other than `unchanged`, one per line (the text of Flux's change event).
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .filter(|c| c.action != Action::Unchanged)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether anything was written to (or deleted from) the cluster.
    pub fn changed_anything(&self) -> bool {
        self.0.iter().any(|c| {
            matches!(
                c.action,
                Action::Created | Action::Configured | Action::Deleted
            )
        })
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
pub fn subject(id: &ObjectId) -> String {
    if id.namespace.is_empty() {
        format!("{}/{}", id.kind, id.name)
    } else {
        format!("{}/{}/{}", id.kind, id.namespace, id.name)
    }
}

/// Why an apply, prune or wait failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server does not know the kind (no CRD for it).
    #[error("{subject}: no matches for kind {kind} in version {api_version}: {source}")]
    UnknownKind {
        subject: String,
        kind: String,
        api_version: String,
        #[source]
        source: kube::Error,
    },
    /// A namespaced object without a namespace (and no `targetNamespace` to give it one).
    #[error("{subject}: namespace not specified")]
    NamespaceMissing { subject: String },
    /// The server refused the object in the dry-run; nothing was applied.
    #[error("{subject} dry-run failed: {source}")]
    DryRun {
        subject: String,
        #[source]
        source: kube::Error,
    },
    /// Applying an object that passed its dry-run failed.
    #[error("{subject} apply failed: {source}")]
    Apply {
        subject: String,
        #[source]
        source: kube::Error,
    },
    /// Reading or deleting an object that left the set failed.
    #[error("{subject} prune failed: {source}")]
    Prune {
        subject: String,
        #[source]
        source: kube::Error,
    },
    /// Reading an object to judge its health failed.
    #[error("{subject} health check failed: {source}")]
    Read {
        subject: String,
        #[source]
        source: kube::Error,
    },
    /// The objects were not healthy within the timeout (or one failed outright).
    #[error("{0}")]
    Unhealthy(String),
}

impl ApplyError {
    /// Whether retrying the same input cannot help (the object is invalid as written).
    pub fn is_terminal(&self) -> bool {
        match self {
            ApplyError::NamespaceMissing { .. } => true,
            ApplyError::DryRun { source, .. } => !is_transient(source),
            _ => false,
        }
    }
}

/// Whether an API error may go away by itself (server errors, throttling, lost connections).
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429 || status.code == 409,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Runs `call` until it succeeds, fails for good, or has failed transiently 4 times.
pub(crate) async fn retrying<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(25);
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if attempt < 3 && is_transient(&error) => {
                attempt += 1;
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
            result => return result,
        }
    }
}

/// Requests in flight per reconcile for dry-runs and for applies of one kind.
pub const APPLY_CONCURRENCY: usize = 16;

/// Objects of one kind in one namespace from which the live objects are LISTed at once.
const LIST_THRESHOLD: usize = 8;

/// apiVersion, kind and namespace of a group of objects.
type GroupKey = (String, String, String);

/// Live objects of one group by name.
type Listed = HashMap<String, Value>;

fn group_key(object: &DesiredObject) -> GroupKey {
    (
        object.api_version.clone(),
        object.id.kind.clone(),
        object.id.namespace.clone(),
    )
}

/// API resources by group, version and kind, shared by every reconcile of the agent.
///
/// Only found kinds are kept: a kind that is missing now may be defined by a CRD later.
#[derive(Clone, Default)]
pub struct KindCache(Arc<DashMap<KindKey, (ApiResource, bool)>>);

/// Group, version and kind.
type KindKey = (String, String, String);

impl KindCache {
    /// The resource of a kind and whether it is namespaced.
    pub async fn resolve(
        &self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), kube::Error> {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let key = (group.clone(), version.clone(), kind.to_string());
        if let Some(found) = self.0.get(&key) {
            return Ok(found.clone());
        }
        let gvk = GroupVersionKind::gvk(&group, &version, kind);
        let (resource, capabilities) = retrying(|| pinned_kind(client, &gvk)).await?;
        let found = (resource, capabilities.scope == Scope::Namespaced);
        self.0.insert(key, found.clone());
        Ok(found)
    }

    /// Drops a kind, so that the next use asks the server again (after a 404 that may mean
    /// its CRD changed or went away).
    pub fn forget(&self, api_version: &str, kind: &str) {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        self.0.remove(&(group, version, kind.to_string()));
    }
}

/// An object checked by the server and compared with the cluster, ready to apply.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub desired: DesiredObject,
    pub resource: ApiResource,
    pub namespaced: bool,
    pub policy: ApplyPolicy,
    /// The object in the cluster before this reconcile.
    pub live: Option<Value>,
    /// The server's dry-run result; `None` when the policy skips the object.
    pub dry_run: Option<Value>,
}

impl Prepared {
    /// What applying would do to this object.
    pub fn action(&self) -> Action {
        match (&self.policy, &self.live, &self.dry_run) {
            (ApplyPolicy::Skip, _, _) => Action::Skipped,
            (ApplyPolicy::IfNotPresent, Some(_), _) => Action::Skipped,
            (_, None, _) => Action::Created,
            (_, Some(live), Some(dry)) if drift::has_drifted(live, dry) => Action::Configured,
            _ => Action::Unchanged,
        }
    }

    /// The fields an apply would change in the live object.
    pub fn drifted_fields(&self) -> Vec<String> {
        match (&self.live, &self.dry_run) {
            (Some(live), Some(dry)) => drift::changed_fields(live, dry),
            _ => Vec::new(),
        }
    }

    pub fn subject(&self) -> String {
        subject(&self.desired.id)
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        api_for(
            client,
            &self.resource,
            self.namespaced,
            &self.desired.id.namespace,
        )
    }

    fn raw<'a>(&self, client: &'a Client) -> Raw<'a> {
        Raw::new(
            client,
            &self.resource,
            self.namespaced,
            &self.desired.id.namespace,
        )
    }
}

fn api_for(
    client: &Client,
    resource: &ApiResource,
    namespaced: bool,
    namespace: &str,
) -> Api<DynamicObject> {
    if namespaced {
        Api::namespaced_with(client.clone(), namespace, resource)
    } else {
        Api::all_with(client.clone(), resource)
    }
}

fn to_value(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Requests on one kind in one namespace, answered as plain JSON.
///
/// `Api<DynamicObject>` decodes every answer into typed metadata, which the reconciler then
/// turns back into JSON to compare; the dry-run and apply of a whole set are most of a
/// reconcile's work, so they read answers straight into JSON, or not at all for an apply.
struct Raw<'a> {
    client: &'a Client,
    request: kube::core::Request,
}

impl<'a> Raw<'a> {
    fn new(client: &'a Client, resource: &ApiResource, namespaced: bool, namespace: &str) -> Self {
        let namespace = (namespaced && !namespace.is_empty()).then_some(namespace);
        let url = <DynamicObject as kube::Resource>::url_path(resource, namespace);
        Raw {
            client,
            request: kube::core::Request::new(url),
        }
    }

    fn apply_request(
        &self,
        name: &str,
        params: &PatchParams,
        body: &Value,
    ) -> Result<http::Request<Vec<u8>>, kube::Error> {
        let mut request = self
            .request
            .patch(name, params, &Patch::Apply(body))
            .map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert("patch");
        Ok(request)
    }

    /// The server's result of a server-side apply with `params` (a dry-run).
    async fn dry_run(
        &self,
        name: &str,
        params: &PatchParams,
        body: &Value,
    ) -> Result<Value, kube::Error> {
        let request = self.apply_request(name, params, body)?;
        self.client.request::<Value>(request).await
    }

    /// A server-side apply with `params`; its answer is not needed.
    async fn apply(
        &self,
        name: &str,
        params: &PatchParams,
        body: &Value,
    ) -> Result<(), kube::Error> {
        let request = self.apply_request(name, params, body)?;
        self.client.request_text(request).await.map(drop)
    }

    /// The live object, `None` when there is none.
    async fn get(&self, name: &str) -> Result<Option<Value>, kube::Error> {
        let mut request = self
            .request
            .get(name, &kube::api::GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert("get_opt");
        match self.client.request::<Value>(request).await {
            Ok(object) => Ok(Some(object)),
            Err(kube::Error::Api(status)) if status.reason == "NotFound" => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The live objects by name, each with the apiVersion and kind list items lack.
    async fn list(&self, api_version: &str, kind: &str) -> Result<Listed, kube::Error> {
        let mut request = self
            .request
            .list(&kube::api::ListParams::default())
            .map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert("list");
        let mut list = self.client.request::<Value>(request).await?;
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok(items
            .into_iter()
            .filter_map(|mut item| {
                let name = item.pointer("/metadata/name")?.as_str()?.to_string();
                let fields = item.as_object_mut()?;
                fields.insert("apiVersion".into(), Value::String(api_version.into()));
                fields.insert("kind".into(), Value::String(kind.into()));
                Some((name, item))
            })
            .collect())
    }
}

/// An object whose dry-run cannot succeed until an earlier stage of the same set is applied
/// (its Namespace or its CRD is in the set); checked again after that stage.
#[derive(Debug, Clone)]
pub struct Deferred(pub DesiredObject);

/// Applies objects for one Kustomization with one client (impersonating its service
/// account when it names one).
#[derive(Clone)]
pub struct Applier {
    pub client: Client,
    pub kinds: KindCache,
    pub field_manager: String,
    /// Recreate objects whose immutable fields changed (`spec.force`).
    pub force: bool,
}

impl Applier {
    fn apply_params(&self, dry_run: bool) -> PatchParams {
        let mut params = PatchParams::apply(&self.field_manager).force();
        params.dry_run = dry_run;
        params
    }

    /// Dry-runs every object and reads its live version. Objects that need a Namespace or CRD
    /// from `set` that does not exist yet are returned as [`Deferred`].
    pub async fn prepare(
        &self,
        objects: &[DesiredObject],
        set: &[DesiredObject],
    ) -> Result<(Vec<Prepared>, Vec<Deferred>), ApplyError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let listed = self.list_large_groups(objects).await;
        let results: Vec<Result<Prepared, Deferred>> = stream::iter(objects.iter().cloned())
            .map(|object| {
                let key = group_key(&object);
                self.prepare_one(object, set, listed.get(&key))
            })
            .buffered(APPLY_CONCURRENCY)
            .try_collect()
            .await?;
        let mut prepared = Vec::new();
        let mut deferred = Vec::new();
        for result in results {
            match result {
                Ok(p) => prepared.push(p),
                Err(d) => deferred.push(d),
            }
        }
        Ok((prepared, deferred))
    }

    /// Live objects of every (kind, namespace) with at least [`LIST_THRESHOLD`] objects in
    /// the set, read with one LIST instead of one GET each. A group whose LIST fails (e.g.
    /// its kind is not served yet) is left to per-object reads.
    async fn list_large_groups(&self, objects: &[DesiredObject]) -> HashMap<GroupKey, Listed> {
        let mut counts: HashMap<GroupKey, usize> = HashMap::new();
        for object in objects {
            *counts.entry(group_key(object)).or_default() += 1;
        }
        let mut listed = HashMap::new();
        for (key, count) in counts {
            if count < LIST_THRESHOLD {
                continue;
            }
            let (api_version, kind, namespace) = &key;
            let Ok((resource, namespaced)) =
                self.kinds.resolve(&self.client, api_version, kind).await
            else {
                continue;
            };
            let raw = Raw::new(&self.client, &resource, namespaced, namespace);
            let Ok(objects) = retrying(|| raw.list(api_version, kind)).await else {
                continue;
            };
            listed.insert(key, objects);
        }
        listed
    }

    async fn prepare_one(
        &self,
        mut desired: DesiredObject,
        set: &[DesiredObject],
        listed: Option<&Listed>,
    ) -> Result<Result<Prepared, Deferred>, ApplyError> {
        let subject = subject(&desired.id);
        let kind = desired.id.kind.clone();
        let (resource, namespaced) = match self
            .kinds
            .resolve(&self.client, &desired.api_version, &kind)
            .await
        {
            Ok(found) => found,
            Err(error) if is_not_found(&error) && defines_kind(set, &desired) => {
                return Ok(Err(Deferred(desired)));
            }
            Err(source) => {
                return Err(ApplyError::UnknownKind {
                    subject,
                    kind,
                    api_version: desired.api_version.clone(),
                    source,
                });
            }
        };
        if namespaced && desired.id.namespace.is_empty() {
            return Err(ApplyError::NamespaceMissing { subject });
        }
        if !namespaced && !desired.id.namespace.is_empty() {
            desired.id.namespace.clear();
            if let Some(metadata) = desired
                .object
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
            {
                metadata.remove("namespace");
            }
        }
        let policy = plan::apply_policy(&desired);
        let mut prepared = Prepared {
            desired,
            resource,
            namespaced,
            policy,
            live: None,
            dry_run: None,
        };
        let raw = prepared.raw(&self.client);
        let name = prepared.desired.id.name.clone();
        let params = self.apply_params(true);
        let body = &prepared.desired.object;
        let dry_run_once = || raw.dry_run(&name, &params, body);
        let read = async {
            match listed {
                Some(listed) => Ok(listed.get(&name).cloned()),
                None => retrying(|| raw.get(&name)).await,
            }
        };
        // The live object and the dry-run are independent unless the policy depends on
        // whether the object exists; then the dry-run waits for the read.
        let (live, dry_run) = if policy == ApplyPolicy::Apply {
            let dry = retrying(dry_run_once);
            let (live, dry) = futures::join!(read, dry);
            (live, Some(dry))
        } else {
            (read.await, None)
        };
        let live = live.map_err(|source| ApplyError::DryRun {
            subject: subject.clone(),
            source,
        })?;
        let dry_run = match dry_run {
            Some(dry) => Some(dry),
            None if policy == ApplyPolicy::Skip || live.is_some() => None,
            None => Some(retrying(dry_run_once).await),
        };
        prepared.live = live;
        match dry_run {
            None => {}
            Some(Ok(result)) => prepared.dry_run = Some(result),
            Some(Err(error))
                if is_not_found(&error)
                    && prepared.namespaced
                    && creates_namespace(set, &prepared.desired.id.namespace) =>
            {
                return Ok(Err(Deferred(prepared.desired)));
            }
            Some(Err(source)) => {
                if is_not_found(&source) {
                    self.kinds
                        .forget(&prepared.desired.api_version, &prepared.desired.id.kind);
                }
                return Err(ApplyError::DryRun { subject, source });
            }
        }
        Ok(Ok(prepared))
    }

    /// Applies the prepared objects in order, skipping unchanged ones.
    pub async fn apply(
        &self,
        prepared: &[Prepared],
        changes: &mut ChangeSet,
    ) -> Result<(), ApplyError> {
        use futures::stream::{self, StreamExt};
        // Kinds go in Flux's order, one after the other; the objects of one kind do not
        // depend on each other, so they are applied concurrently.
        for group in prepared.chunk_by(|a, b| {
            a.desired.stage() == b.desired.stage()
                && a.desired.id.kind == b.desired.id.kind
                && a.desired.id.group == b.desired.id.group
        }) {
            let results: Vec<Result<Change, ApplyError>> = stream::iter(group)
                .map(|object| async move {
                    let action = object.action();
                    if matches!(action, Action::Created | Action::Configured) {
                        self.apply_one(object).await?;
                    }
                    Ok(Change {
                        subject: object.subject(),
                        action,
                    })
                })
                .buffered(APPLY_CONCURRENCY)
                .collect()
                .await;
            let mut failure = None;
            for result in results {
                match result {
                    Ok(change) => changes.0.push(change),
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = failure {
                return Err(error);
            }
        }
        Ok(())
    }

    async fn apply_one(&self, object: &Prepared) -> Result<(), ApplyError> {
        let name = &object.desired.id.name;
        let params = self.apply_params(false);
        let body = &object.desired.object;
        let raw = object.raw(&self.client);
        match retrying(|| raw.apply(name, &params, body)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status))
                if self.force && status.code == 422 && status.message.contains("immutable") =>
            {
                // The object cannot be changed in place; `force` asks to replace it.
                let api = object.api(&self.client);
                let foreground = DeleteParams::foreground();
                let deleted = retrying(|| api.delete(name, &foreground)).await;
                if let Err(source) = deleted.map(drop)
                    && !is_not_found(&source)
                {
                    return Err(ApplyError::Apply {
                        subject: object.subject(),
                        source,
                    });
                }
                let fresh: DynamicObject =
                    serde_json::from_value(body.clone()).map_err(|e| ApplyError::Apply {
                        subject: object.subject(),
                        source: kube::Error::SerdeError(e),
                    })?;
                let post = PostParams::default();
                retrying(|| api.create(&post, &fresh))
                    .await
                    .map(drop)
                    .map_err(|source| ApplyError::Apply {
                        subject: object.subject(),
                        source,
                    })
            }
            Err(source) => Err(ApplyError::Apply {
                subject: object.subject(),
                source,
            }),
        }
    }

    /// Deletes the stale objects (in the order given) that belong to this Kustomization.
    /// Returns the changes and the entries that could not be pruned and stay in the inventory.
    pub async fn prune(
        &self,
        stale: &[(ObjectId, String)],
        owner: (&str, &str),
        changes: &mut ChangeSet,
    ) -> Result<(), ApplyError> {
        for (id, version) in stale {
            let subject = subject(id);
            let api_version = if id.group.is_empty() {
                version.clone()
            } else {
                format!("{}/{}", id.group, version)
            };
            let (resource, namespaced) = match self
                .kinds
                .resolve(&self.client, &api_version, &id.kind)
                .await
            {
                Ok(found) => found,
                // The kind itself is gone (its CRD was pruned first): so is the object.
                Err(error) if is_not_found(&error) => continue,
                Err(source) => return Err(ApplyError::Prune { subject, source }),
            };
            let api = api_for(&self.client, &resource, namespaced, &id.namespace);
            let live =
                retrying(|| api.get_opt(&id.name))
                    .await
                    .map_err(|source| ApplyError::Prune {
                        subject: subject.clone(),
                        source,
                    })?;
            let Some(live) = live.map(to_value) else {
                continue;
            };
            if !plan::may_prune(&live) || !owned_by(&live, owner) {
                changes.0.push(Change {
                    subject,
                    action: Action::Skipped,
                });
                continue;
            }
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match retrying(|| api.delete(&id.name, &params)).await {
                Ok(_) => changes.0.push(Change {
                    subject,
                    action: Action::Deleted,
                }),
                Err(error) if is_not_found(&error) => {}
                Err(source) => return Err(ApplyError::Prune { subject, source }),
            }
        }
        Ok(())
    }

    /// Waits until every target is healthy by kstatus' rules, failing at `timeout` (or at
    /// once when one has failed for good). Waiting uses timers; the actor is never blocked.
    pub async fn wait(
        &self,
        targets: &[Target],
        timeout: Duration,
        rules: &health::Rules,
    ) -> Result<(), ApplyError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            let mut pending = Vec::new();
            for target in targets {
                let api = api_for(
                    &self.client,
                    &target.resource,
                    target.namespaced,
                    &target.namespace,
                );
                let live = match retrying(|| api.get_opt(&target.name)).await {
                    Ok(live) => live.map(to_value),
                    Err(source) if is_transient(&source) => {
                        pending.push(format!("{} status: 'Unknown': {source}", target.subject));
                        continue;
                    }
                    Err(source) => {
                        return Err(ApplyError::Read {
                            subject: target.subject.clone(),
                            source,
                        });
                    }
                };
                let Some(live) = live else {
                    pending.push(format!("{} status: 'NotFound'", target.subject));
                    continue;
                };
                let health = rules.judge(&live);
                match health.status {
                    HealthStatus::Current => {}
                    HealthStatus::Failed => {
                        return Err(ApplyError::Unhealthy(format!(
                            "health check failed after {:.1}s: [{} status: 'Failed': {}]",
                            (timeout.saturating_sub(
                                deadline.saturating_duration_since(tokio::time::Instant::now())
                            ))
                            .as_secs_f64(),
                            target.subject,
                            health.message
                        )));
                    }
                    // Why the status cannot be told (e.g. a health expression failing to
                    // evaluate) is what the user needs to read at the timeout.
                    HealthStatus::Unknown => pending.push(format!(
                        "{} status: 'Unknown': {}",
                        target.subject, health.message
                    )),
                    status => pending.push(format!("{} status: '{status:?}'", target.subject)),
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ApplyError::Unhealthy(format!(
                    "timeout waiting for: [{}]",
                    pending.join(", ")
                )));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// The health-check target for an object reference.
    pub async fn target(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Target, ApplyError> {
        let id = ObjectId {
            namespace: namespace.to_string(),
            name: name.to_string(),
            group: String::new(),
            kind: kind.to_string(),
        };
        let subject = subject(&id);
        let (resource, namespaced) = self
            .kinds
            .resolve(&self.client, api_version, kind)
            .await
            .map_err(|source| ApplyError::Read {
                subject: subject.clone(),
                source,
            })?;
        Ok(Target {
            resource,
            namespaced,
            namespace: namespace.to_string(),
            name: name.to_string(),
            subject,
        })
    }
}

/// An object to wait for.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub namespace: String,
    pub name: String,
    pub subject: String,
}

impl Target {
    /// The API of this object's kind, where it lives.
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        api_for(client, &self.resource, self.namespaced, &self.namespace)
    }
}

impl From<&Prepared> for Target {
    fn from(p: &Prepared) -> Self {
        Target {
            resource: p.resource.clone(),
            namespaced: p.namespaced,
            namespace: p.desired.id.namespace.clone(),
            name: p.desired.id.name.clone(),
            subject: p.subject(),
        }
    }
}

fn owned_by(live: &Value, (name, namespace): (&str, &str)) -> bool {
    let labels = live.pointer("/metadata/labels");
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    label("kustomize.toolkit.fluxcd.io/name") == Some(name)
        && label("kustomize.toolkit.fluxcd.io/namespace") == Some(namespace)
}

/// Whether `set` holds the CRD that defines the object's kind.
fn defines_kind(set: &[DesiredObject], object: &DesiredObject) -> bool {
    set.iter().any(|o| {
        o.id.kind == "CustomResourceDefinition"
            && o.object.pointer("/spec/group").and_then(Value::as_str)
                == Some(object.id.group.as_str())
            && o.object.pointer("/spec/names/kind").and_then(Value::as_str)
                == Some(object.id.kind.as_str())
    })
}

/// Whether `set` holds the Namespace `namespace`.
fn creates_namespace(set: &[DesiredObject], namespace: &str) -> bool {
    set.iter()
        .any(|o| o.id.kind == "Namespace" && o.id.group.is_empty() && o.id.name == namespace)
}

/// Ids of prepared objects, for inventory bookkeeping.
pub fn ids(prepared: &[Prepared]) -> BTreeSet<ObjectId> {
    prepared.iter().map(|p| p.desired.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_sets_read_as_flux_events() {
        let changes = ChangeSet(vec![
            Change {
                subject: "Deployment/default/podinfo".into(),
                action: Action::Configured,
            },
            Change {
                subject: "Service/default/podinfo".into(),
                action: Action::Unchanged,
            },
            Change {
                subject: "Namespace/web".into(),
                action: Action::Created,
            },
        ]);
        assert_eq!(
            changes.summary(),
            "Deployment/default/podinfo configured\nNamespace/web created"
        );
        assert!(changes.changed_anything());
        assert!(
            !ChangeSet(vec![Change {
                subject: "x".into(),
                action: Action::Skipped
            }])
            .changed_anything()
        );
    }

    fn prepared(policy: ApplyPolicy, live: Option<Value>, dry_run: Option<Value>) -> Prepared {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}});
        Prepared {
            desired: DesiredObject::from_value(object, 0).unwrap_or_else(|e| panic!("{e}")),
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
            namespaced: true,
            policy,
            live,
            dry_run,
        }
    }

    #[test]
    fn the_dry_run_against_the_live_object_decides_the_action() {
        let live = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "1"}, "data": {"k": "v"}});
        let same = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "2"}, "data": {"k": "v"}});
        let other = serde_json::json!({"metadata": {"name": "a"}, "data": {"k": "w"}});
        let action = |policy, live: Option<&Value>, dry: Option<&Value>| {
            prepared(policy, live.cloned(), dry.cloned()).action()
        };
        assert_eq!(
            action(ApplyPolicy::Apply, None, Some(&same)),
            Action::Created
        );
        assert_eq!(
            action(ApplyPolicy::Apply, Some(&live), Some(&same)),
            Action::Unchanged
        );
        assert_eq!(
            action(ApplyPolicy::Apply, Some(&live), Some(&other)),
            Action::Configured
        );
        assert_eq!(
            action(ApplyPolicy::IfNotPresent, Some(&live), None),
            Action::Skipped
        );
        assert_eq!(
            action(ApplyPolicy::IfNotPresent, None, Some(&same)),
            Action::Created
        );
        assert_eq!(action(ApplyPolicy::Skip, None, None), Action::Skipped);
        assert_eq!(
            prepared(ApplyPolicy::Apply, Some(live), Some(other)).drifted_fields(),
            [".data.k"]
        );
    }

    #[test]
    fn only_objects_labelled_for_this_kustomization_are_owned() {
        let live = serde_json::json!({"metadata": {"labels": {
            "kustomize.toolkit.fluxcd.io/name": "apps",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}});
        assert!(owned_by(&live, ("apps", "flux-system")));
        assert!(!owned_by(&live, ("infra", "flux-system")));
        assert!(!owned_by(
            &serde_json::json!({"metadata": {}}),
            ("apps", "flux-system")
        ));
    }
}
