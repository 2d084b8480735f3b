//! The REST verbs on resources: get, list, create, update, patch (all types), delete and
//! deletecollection, with kube-apiserver's object semantics (uid, generation, resourceVersion
//! preconditions, finalizers, dry runs, status subresource, managed fields).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::fields::FieldSet;
use crate::meta::{label_named, name_errors, now};
use crate::patch;
use crate::registry::ResourceType;
use crate::schema::Cursor;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::Sim;
use crate::ssa::{self, Scope};
use crate::status::{self, ApiError, ApiResult};
use crate::store::{Key, State};
use crate::table;

/// A resolved request on a resource.
#[derive(Debug, Clone)]
pub struct Target {
    /// The type.
    pub rt: Arc<ResourceType>,
    /// The version asked for.
    pub version: String,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Name from the path.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `finalize`).
    pub sub: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> Key {
        Key::new(
            self.rt.storage_group(),
            &self.rt.resource,
            self.namespace.as_deref().unwrap_or(""),
            name,
        )
    }
    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }
    fn sub(&self) -> &str {
        self.sub.as_deref().unwrap_or("")
    }
    fn scope(&self) -> Scope<'_> {
        Scope {
            rt: &self.rt,
            version: &self.version,
            subresource: if self.sub() == "status" { "status" } else { "" },
        }
    }
}

/// Request-wide inputs.
#[derive(Debug, Default, Clone)]
pub struct Params {
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// `Content-Type`.
    pub content_type: String,
    /// `User-Agent`, for the default field manager.
    pub user_agent: String,
    /// Whether the client asked for a Table.
    pub table: bool,
    /// Whether the client asked for `PartialObjectMetadata`.
    pub metadata_only: bool,
}

impl Params {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn dry_run(&self) -> ApiResult<bool> {
        match self.q("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other}; the only valid value is \"All\""
            ))),
        }
    }
    fn manager(&self) -> ApiResult<String> {
        if let Some(m) = self.q("fieldManager") {
            if m.len() > 128 {
                return Err(ApiError::bad_request(format!(
                    "fieldManager: Too long: may not be more than 128 bytes (got {})",
                    m.len()
                )));
            }
            return Ok(m.to_string());
        }
        // kube-apiserver defaults the manager to the User-Agent up to the first '/'.
        let ua = self.user_agent.split('/').next().unwrap_or_default();
        Ok(ua.chars().take(128).collect())
    }
}

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// A JSON body with a status code.
    Json(u16, Value),
}

/// Decodes a JSON or YAML body into an object.
pub fn decode(body: &[u8], content_type: &str) -> ApiResult<Value> {
    let v: Value = if content_type.contains("protobuf") {
        crate::protobuf::decode(body)?
    } else if content_type.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body: the body must be a JSON object",
        ));
    }
    Ok(v)
}

fn meta_str<'v>(obj: &'v Value, k: &str) -> Option<&'v str> {
    obj.get("metadata")
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
}

/// Sets a nested field, replacing anything in the way that is not an object (so malformed
/// stored input cannot make an index panic).
pub fn set_in(obj: &mut Value, path: &[&str], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        *obj = v;
        return;
    };
    let mut cur = obj;
    for p in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        cur = m
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(m) = cur {
        m.insert(last.to_string(), v);
    }
}

/// The metadata map, created (and the object made a map) if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was made a map above"),
    }
}

/// The `meta.k8s.io/v1` PartialObjectMetadata of an object.
pub fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// Sets apiVersion/kind to the requested version (CRD versions are served without conversion).
pub fn served(obj: &Value, t: &Target) -> Value {
    let mut o = if t.rt.is_events_v1() {
        crate::events::to_events_v1(obj)
    } else {
        obj.clone()
    };
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(t.api_version()));
        m.insert("kind".into(), json!(t.rt.kind));
        // Keep apiVersion and kind first, as kube-apiserver encodes them.
        let mut ordered = Map::new();
        for k in ["apiVersion", "kind"] {
            if let Some(v) = m.shift_remove(k) {
                ordered.insert(k.into(), v);
            }
        }
        ordered.extend(std::mem::take(m));
        *m = ordered;
    }
    o
}

fn check_type(obj: &Value, t: &Target) -> ApiResult<()> {
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != t.api_version()
        && !(t.rt.group.is_empty() && av == t.version)
    {
        // kube-apiserver converts between served versions; kubesim only allows the group's
        // own versions here.
        let (g, _) = crate::registry::split_api_version(av);
        if g != t.rt.group || !t.rt.versions.iter().any(|v| av.ends_with(v.as_str())) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                t.api_version()
            )));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != t.rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            t.rt.kind
        )));
    }
    Ok(())
}

fn validate(obj: &Value, t: &Target) -> ApiResult<()> {
    let name = meta_str(obj, "name").unwrap_or_default();
    let mut causes = Vec::new();
    for e in name_errors(name, label_named(&t.rt.resource)) {
        causes.push((
            "metadata.name".to_string(),
            "FieldValueInvalid",
            format!("Invalid value: {:?}: {e}", name),
        ));
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(m) => {
                for (k, v) in m {
                    let ok = v.as_str().is_some_and(|s| {
                        s.len() <= 63
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                            && (s.is_empty()
                                || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                                    && s.ends_with(|c: char| c.is_ascii_alphanumeric())))
                    });
                    if !ok {
                        causes.push(("metadata.labels".to_string(), "FieldValueInvalid", format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")));
                    }
                    let _ = k;
                }
            }
            None if !labels.is_null() => causes.push((
                "metadata.labels".into(),
                "FieldValueInvalid",
                "Invalid value: must be a map of strings".into(),
            )),
            None => {}
        }
    }
    if t.rt.resource == "customresourcedefinitions" {
        crate::crd::validate(obj, &mut causes);
    }
    if !t.rt.builtin
        && let Some(schema) = t.rt.schema(&t.version)
    {
        crate::crd::validate_object(schema, obj, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&t.rt.group, &t.rt.kind, name, &causes))
    }
}

fn ensure_namespace(st: &State, t: &Target, creating: bool, name: &str) -> ApiResult<()> {
    let Some(ns) = &t.namespace else {
        return Ok(());
    };
    match st.get(&Key::new("", "namespaces", "", ns)) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if creating && n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            status::qualified(&t.rt.group, &t.rt.resource),
            name,
        ))
        .with_cause("NamespaceTerminating", ns)),
        Some(_) => Ok(()),
    }
}

impl ApiError {
    fn with_cause(mut self, reason: &str, field: &str) -> Self {
        self.details = Some(Box::new(
            json!({"causes": [{"reason": reason, "message": format!("namespace {field} is being terminated"), "field": "metadata.namespace"}]}),
        ));
        self
    }
}

const GENERATE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(base: &str) -> String {
    let mut b = [0u8; 5];
    crate::tls::random_bytes(&mut b);
    let suffix: String = b
        .iter()
        .map(|x| GENERATE_CHARS[*x as usize % GENERATE_CHARS.len()] as char)
        .collect();
    let base: String = base.chars().take(58).collect();
    format!("{base}{suffix}")
}

fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.shift_remove(k);
        }
    }
    v
}

/// Everything but volatile metadata, to detect no-op writes (which kube-apiserver skips).
fn content(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("resourceVersion");
        if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
            for e in mf {
                if let Some(e) = e.as_object_mut() {
                    e.shift_remove("time");
                }
            }
        }
    }
    v
}

/// The sim's type-specific hooks on writes (what admission, strategies and allocators do).
fn prepare_create(sim: &Sim, t: &Target, obj: &mut Value) {
    match (t.rt.group.as_str(), t.rt.resource.as_str()) {
        ("", "namespaces") => {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            let m = meta_mut(obj);
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "services") => crate::workloads::allocate_service(sim, obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crate::crd::set_status(obj);
            let m = meta_mut(obj);
            let fins = m.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(f) = fins.as_array_mut()
                && !f.iter().any(|x| x == crate::crd::CLEANUP_FINALIZER)
            {
                f.push(json!(crate::crd::CLEANUP_FINALIZER));
            }
        }
        _ => {}
    }
}

fn prepare_update(t: &Target, old: &Value, new: &mut Value) {
    if t.rt.resource == "services" && t.rt.group.is_empty() {
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if new.pointer(&format!("/spec/{k}")).is_none()
                && let Some(v) = old.pointer(&format!("/spec/{k}"))
                && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert(k.into(), v.clone());
            }
        }
    }
    if t.rt.resource == "customresourcedefinitions" {
        crate::crd::set_status(new);
    }
    if t.rt.resource == "namespaces" && t.rt.group.is_empty() {
        // Namespace spec and phase are maintained by the server.
        if let Some(s) = old.get("spec") {
            new["spec"] = s.clone();
        }
    }
}

/// GET of one object.
pub fn get(st: &State, t: &Target, p: &Params) -> ApiResult<Reply> {
    let name = t.name.as_deref().unwrap_or_default();
    let obj = st
        .get(&t.key(name))
        .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.resource, name))?;
    if t.sub() == "scale" {
        return Ok(Reply::Json(200, scale_of(&obj, t)));
    }
    let obj = served(&obj, t);
    if p.metadata_only && !p.table {
        return Ok(Reply::Json(200, partial(&obj)));
    }
    if p.table {
        let meta =
            json!({"resourceVersion": meta_str(&obj, "resourceVersion").unwrap_or_default()});
        return Ok(Reply::Json(
            200,
            table::table(
                &t.rt,
                &t.version,
                &[obj],
                meta,
                p.q("includeObject").unwrap_or("Metadata"),
                true,
            ),
        ));
    }
    Ok(Reply::Json(200, obj))
}

fn scale_of(obj: &Value, t: &Target) -> Value {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta_str(obj, "name"), "namespace": t.namespace, "uid": meta_str(obj, "uid"), "resourceVersion": meta_str(obj, "resourceVersion"), "creationTimestamp": meta_str(obj, "creationTimestamp")},
        "spec": {"replicas": replicas},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

/// The objects a list or watch selects.
pub struct Selection {
    label: LabelSelector,
    field: FieldSelector,
}

impl Selection {
    /// Parses the selectors of a request.
    pub fn parse(t: &Target, p: &Params) -> ApiResult<Self> {
        Ok(Self {
            label: LabelSelector::parse(p.q("labelSelector").unwrap_or_default())?,
            field: FieldSelector::parse(p.q("fieldSelector").unwrap_or_default(), &t.rt.resource)?,
        })
    }
    /// Whether an object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.label.matches(obj) && self.field.matches(obj)
    }
}

fn continue_token(rv: u64, start: &Key) -> String {
    let start = if start.namespace.is_empty() {
        format!("{}\u{0}", start.name)
    } else {
        format!("{}/{}\u{0}", start.namespace, start.name)
    };
    base64::engine::general_purpose::STANDARD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn parse_continue(token: &str) -> ApiResult<(u64, String, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').unwrap_or(("", start));
    Ok((rv, ns.to_string(), name.to_string()))
}

/// LIST.
pub fn list(st: &State, t: &Target, p: &Params) -> ApiResult<Reply> {
    let sel = Selection::parse(t, p)?;
    let limit = match p.q("limit") {
        None | Some("") => 0usize,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
    };
    let mut items = st.list(t.rt.storage_group(), &t.rt.resource, t.namespace.as_deref());
    let mut list_rv = st.rv();
    if let Some(token) = p.q("continue").filter(|c| !c.is_empty()) {
        let (rv, ns, name) = parse_continue(token)?;
        list_rv = rv;
        items.retain(|(k, _)| {
            (k.namespace.as_str(), k.name.as_str()) > (ns.as_str(), name.as_str())
        });
    }
    let selected: Vec<(Key, Arc<Value>)> =
        items.into_iter().filter(|(_, o)| sel.matches(o)).collect();
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    let page: Vec<(Key, Arc<Value>)> = if limit > 0 && selected.len() > limit {
        let remaining = selected.len() - limit;
        let page: Vec<_> = selected.into_iter().take(limit).collect();
        if let Some((last, _)) = page.last() {
            meta["continue"] = json!(continue_token(list_rv, last));
            meta["remainingItemCount"] = json!(remaining);
        }
        page
    } else {
        selected
    };
    let objs: Vec<Value> = page.iter().map(|(_, o)| served(o, t)).collect();
    if p.table {
        return Ok(Reply::Json(
            200,
            table::table(
                &t.rt,
                &t.version,
                &objs,
                meta,
                p.q("includeObject").unwrap_or("Metadata"),
                true,
            ),
        ));
    }
    if p.metadata_only {
        let items: Vec<Value> = objs.iter().map(partial).collect();
        return Ok(Reply::Json(
            200,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
        ));
    }
    let items: Vec<Value> = objs
        .into_iter()
        .map(|mut o| {
            // Typed lists of built-in kinds carry no per-item apiVersion/kind.
            if t.rt.builtin
                && let Some(m) = o.as_object_mut()
            {
                m.shift_remove("apiVersion");
                m.shift_remove("kind");
            }
            o
        })
        .collect();
    let list_kind = format!("{}List", t.rt.kind);
    Ok(Reply::Json(
        200,
        json!({"kind": list_kind, "apiVersion": t.api_version(), "metadata": meta, "items": items}),
    ))
}

/// POST.
pub fn create(sim: &Sim, st: &mut State, t: &Target, p: &Params, body: &[u8]) -> ApiResult<Reply> {
    if t.name.is_some() || t.sub.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let mut obj = decode(body, &p.content_type)?;
    check_type(&obj, t)?;
    strict_fields(t, &obj, p)?;
    let dry = p.dry_run()?;
    let manager = p.manager()?;
    let created = create_object(sim, st, t, &mut obj, &manager, dry, None)?;
    Ok(Reply::Json(201, served(&created, t)))
}

fn strict_fields(t: &Target, obj: &Value, p: &Params) -> ApiResult<()> {
    let mode = p.q("fieldValidation").unwrap_or("Strict");
    if mode != "Strict" || t.rt.builtin {
        return Ok(());
    }
    let unknown = crate::crd::unknown_fields(&t.rt, &t.version, obj);
    if unknown.is_empty() {
        return Ok(());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Err(ApiError::bad_request(format!(
        "strict decoding error: {}",
        msgs.join(", ")
    )))
}

/// Creates `obj` (already decoded); `applied` carries the managedFields of a server-side apply.
pub fn create_object(
    sim: &Sim,
    st: &mut State,
    t: &Target,
    obj: &mut Value,
    manager: &str,
    dry: bool,
    applied: Option<()>,
) -> ApiResult<Value> {
    if !t.rt.builtin {
        crate::crd::prune(&t.rt, &t.version, obj);
    }
    // Namespace from the path wins; a different one in the body is an error.
    if let Some(ns) = &t.namespace {
        match meta_str(obj, "namespace") {
            Some(b) if !b.is_empty() && b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta_mut(obj).insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta_mut(obj).shift_remove("namespace");
    }
    if meta_str(obj, "name").is_none_or(str::is_empty) {
        match meta_str(obj, "generateName").filter(|g| !g.is_empty()) {
            Some(g) => {
                let n = generated_name(g);
                meta_mut(obj).insert("name".into(), json!(n));
            }
            None => {
                return Err(ApiError::invalid(
                    &t.rt.group,
                    &t.rt.kind,
                    "",
                    &[(
                        "metadata.name".into(),
                        "FieldValueRequired",
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
        }
    }
    validate(obj, t)?;
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    ensure_namespace(st, t, true, &name)?;
    let key = t.key(&name);
    if st.get(&key).is_some() {
        return Err(ApiError::already_exists(&t.rt.group, &t.rt.resource, &name));
    }
    {
        let m = meta_mut(obj);
        m.insert("uid".into(), json!(crate::tls::uuid4()));
        m.insert("creationTimestamp".into(), json!(now()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.shift_remove(k);
        }
        if t.rt.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.shift_remove("generation");
        }
    }
    obj["apiVersion"] = json!(t.rt.api_version(t.rt.storage_version()));
    if t.rt.is_events_v1() {
        *obj = crate::events::to_core(obj);
    }
    obj["kind"] = json!(t.rt.kind);
    if t.rt.status
        && let Some(m) = obj.as_object_mut()
    {
        m.shift_remove("status");
    }
    prepare_create(sim, t, obj);
    if t.rt.builtin {
        crate::defaults::apply(&t.rt.group, &t.rt.resource, obj);
    }
    if applied.is_none() {
        ssa::track_update(&t.scope(), None, obj, manager);
    }
    if dry {
        return Ok(obj.clone());
    }
    let stored = st.put(key, obj.clone())?;
    Ok((*stored).clone())
}

/// Shared tail of update, patch and apply: preconditions, immutable fields, status handling,
/// generation, no-op detection, finalizer completion.
fn commit(
    st: &mut State,
    t: &Target,
    old: &Value,
    mut new: Value,
    manager: Option<&str>,
    dry: bool,
) -> ApiResult<Value> {
    let name = t.name.as_deref().unwrap_or_default();
    let key = t.key(name);
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|r| !r.is_empty())
        && Some(rv) != meta_str(old, "resourceVersion")
    {
        return Err(ApiError::modified(&t.rt.group, &t.rt.resource, name));
    }
    if let Some(n) = meta_str(&new, "name")
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty())
        && Some(uid) != meta_str(old, "uid")
    {
        return Err(ApiError::conflict(
            &t.rt.group,
            &t.rt.resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(old, "uid").unwrap_or_default()
            ),
        ));
    }
    check_type(&new, t)?;
    if !new.is_object() {
        return Err(ApiError::bad_request("the body must be an object"));
    }
    // Only status changes through /status; status does not change through the main resource.
    if t.sub() == "status" {
        let mut merged = old.clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.shift_remove("status");
                }
            }
        }
        if let Some(mf) = new.pointer("/metadata/managedFields") {
            meta_mut(&mut merged).insert("managedFields".into(), mf.clone());
        }
        new = merged;
    } else if t.rt.status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.shift_remove("status");
                }
            }
        }
    }
    {
        let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
        let m = meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.shift_remove(k);
                }
            }
        }
        if !m.contains_key("managedFields")
            && let Some(mf) = old_meta.get("managedFields")
        {
            m.insert("managedFields".into(), mf.clone());
        }
    }
    new["apiVersion"] = json!(t.rt.api_version(t.rt.storage_version()));
    if t.rt.is_events_v1() {
        new = crate::events::to_core(&new);
    }
    new["kind"] = json!(t.rt.kind);
    if !t.rt.builtin {
        crate::crd::prune(&t.rt, &t.version, &mut new);
    }
    prepare_update(t, old, &mut new);
    if t.rt.builtin {
        crate::defaults::apply(&t.rt.group, &t.rt.resource, &mut new);
    }
    validate(&new, t)?;
    let frozen = immutable(t, old, &new);
    if !frozen.is_empty() {
        return Err(ApiError::invalid(&t.rt.group, &t.rt.kind, name, &frozen));
    }
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let fin = |o: &Value| -> Vec<String> {
            o.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (of, nf) = (fin(old), fin(&new));
        if nf.iter().any(|f| !of.contains(f)) {
            return Err(ApiError::invalid(
                &t.rt.group,
                &t.rt.kind,
                name,
                &[(
                    "metadata.finalizers".into(),
                    "FieldValueForbidden",
                    "Forbidden: no new finalizers can be added if the object is being deleted"
                        .into(),
                )],
            ));
        }
    }
    if t.rt.generation && spec_part(old) != spec_part(&new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    if let Some(manager) = manager {
        ssa::track_update(&t.scope(), Some(old), &mut new, manager);
    }
    if content(old) == content(&new) {
        return Ok(old.clone());
    }
    if dry {
        // A dry run changes nothing, so the object keeps its resourceVersion.
        if let Some(rv) = old.pointer("/metadata/resourceVersion") {
            meta_mut(&mut new).insert("resourceVersion".into(), rv.clone());
        }
        return Ok(new);
    }
    let terminating = new.pointer("/metadata/deletionTimestamp").is_some();
    let no_finalizers = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if terminating && no_finalizers && !(t.rt.resource == "namespaces" && t.rt.group.is_empty()) {
        let gone = st.remove(&key)?;
        return Ok(gone.map(|g| (*g).clone()).unwrap_or(new));
    }
    Ok((*st.put(key, new)?).clone())
}

/// Changes kube-apiserver's validation refuses on update: immutable ConfigMaps and Secrets,
/// workload selectors, Job templates, Service cluster IPs, and StatefulSet spec fields.
fn immutable(t: &Target, old: &Value, new: &Value) -> Vec<(String, &'static str, String)> {
    let mut causes = Vec::new();
    let changed = |p: &str| old.pointer(p) != new.pointer(p);
    let show = |p: &str| {
        new.pointer(p)
            .map(Value::to_string)
            .unwrap_or_else(|| "null".into())
    };
    match (t.rt.group.as_str(), t.rt.resource.as_str()) {
        ("", "configmaps" | "secrets") if old.get("immutable") == Some(&Value::Bool(true)) => {
            for f in ["data", "binaryData", "stringData"] {
                if changed(&format!("/{f}")) {
                    causes.push((
                        f.to_string(),
                        "FieldValueForbidden",
                        "Forbidden: field is immutable when `immutable` is set".to_string(),
                    ));
                }
            }
            if changed("/immutable") {
                causes.push((
                    "immutable".into(),
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
        ("apps", "deployments" | "replicasets" | "daemonsets") if changed("/spec/selector") => {
            causes.push((
                "spec.selector".into(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: field is immutable",
                    show("/spec/selector")
                ),
            ));
        }
        ("apps", "statefulsets") => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = s.as_object_mut() {
                    for k in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                    ] {
                        m.shift_remove(k);
                    }
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(("spec".into(), "FieldValueForbidden", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into()));
            }
        }
        ("batch", "jobs") => {
            if changed("/spec/selector") {
                causes.push((
                    "spec.selector".into(),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: field is immutable",
                        show("/spec/selector")
                    ),
                ));
            }
            if changed("/spec/template") {
                causes.push((
                    "spec.template".into(),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: field is immutable",
                        show("/spec/template")
                    ),
                ));
            }
        }
        ("", "services")
            if new.pointer("/spec/clusterIP").is_some() && changed("/spec/clusterIP") =>
        {
            causes.push((
                "spec.clusterIPs[0]".into(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: [{}]: may not change once set",
                    show("/spec/clusterIP")
                ),
            ));
        }
        _ => {}
    }
    causes
}

/// PUT.
pub fn update(st: &mut State, t: &Target, p: &Params, body: &[u8]) -> ApiResult<Reply> {
    let name = t.name.as_deref().unwrap_or_default();
    let new = decode(body, &p.content_type)?;
    let dry = p.dry_run()?;
    let manager = p.manager()?;
    let old = st
        .get(&t.key(name))
        .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.resource, name))?;
    if t.sub() == "scale" {
        let replicas = new.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
        let mut n = (*old).clone();
        set_in(&mut n, &["spec", "replicas"], replicas);
        let t2 = Target {
            sub: None,
            ..t.clone()
        };
        let out = commit(st, &t2, &old, n, Some(&manager), dry)?;
        return Ok(Reply::Json(200, scale_of(&out, t)));
    }
    if t.sub() == "finalize" && t.rt.resource == "namespaces" {
        let mut n = (*old).clone();
        set_in(
            &mut n,
            &["spec", "finalizers"],
            new.pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([])),
        );
        let out = finalize_namespace(st, &t.key(name), n)?;
        return Ok(Reply::Json(200, served(&out, t)));
    }
    strict_fields(t, &new, p)?;
    let out = commit(st, t, &old, new, Some(&manager), dry)?;
    Ok(Reply::Json(200, served(&out, t)))
}

/// Stores a namespace whose finalizers changed; removes it when none are left and it is
/// terminating.
pub fn finalize_namespace(st: &mut State, key: &Key, ns: Value) -> ApiResult<Value> {
    let done = ns
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
        && ns
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if done && ns.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(st.remove(key)?.map(|o| (*o).clone()).unwrap_or(ns));
    }
    Ok((*st.put(key.clone(), ns)?).clone())
}

const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// PATCH (all four types).
pub fn patch(sim: &Sim, st: &mut State, t: &Target, p: &Params, body: &[u8]) -> ApiResult<Reply> {
    let name = t.name.as_deref().unwrap_or_default().to_string();
    let dry = p.dry_run()?;
    let ct = p
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let key = t.key(&name);
    let old = st.get(&key);
    if ct == "application/apply-patch+yaml" {
        let manager = p.q("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| ApiError::bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"))?.to_string();
        let force = matches!(p.q("force"), Some("true") | Some("1"));
        let mut applied = decode(body, "application/yaml")?;
        check_type(&applied, t)?;
        if t.rt.is_events_v1() {
            // Ownership is tracked on the stored (core) form.
            let av = applied.get("apiVersion").cloned();
            applied = crate::events::to_core(&applied);
            if let Some(av) = av {
                applied["apiVersion"] = av;
            }
        }
        if applied.get("apiVersion").is_none() || applied.get("kind").is_none() {
            return Err(ApiError::bad_request("invalid object type: /, Kind="));
        }
        if let Some(n) = meta_str(&applied, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        strict_fields(t, &applied, p)?;
        let scope = t.scope();
        return match old {
            None => {
                if t.sub.is_some() {
                    return Err(ApiError::not_found(&t.rt.group, &t.rt.resource, &name));
                }
                let mut obj = ssa::apply(&scope, None, &applied, &manager, force)?;
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let created = create_object(sim, st, t, &mut obj, &manager, dry, Some(()))?;
                Ok(Reply::Json(201, served(&created, t)))
            }
            Some(old) => {
                let mut base = (*old).clone();
                if let Some(m) = base.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.shift_remove("resourceVersion");
                }
                let mut new = ssa::apply(&scope, Some(&base), &applied, &manager, force)?;
                // An applied resourceVersion is a precondition.
                if let Some(rv) = meta_str(&applied, "resourceVersion") {
                    meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
                }
                let out = commit(st, t, &old, new, None, dry)?;
                Ok(Reply::Json(200, served(&out, t)))
            }
        };
    }
    let old = old.ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.resource, &name))?;
    let manager = p.manager()?;
    let base = if t.sub() == "scale" {
        scale_of(&old, t)
    } else {
        served(&old, t)
    };
    let mut new = match ct.as_str() {
        "application/json-patch+json" => patch::json_patch(&base, body)?,
        "application/merge-patch+json" => patch::merge_patch(&base, body)?,
        "application/strategic-merge-patch+json" if t.rt.builtin => {
            let cur = Cursor::root(&t.rt.resource, None, true);
            patch::strategic_merge_patch(&base, body, &cur, &t.rt.resource)?
        }
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::unsupported_media(
                &PATCH_TYPES[..2]
                    .iter()
                    .chain(&PATCH_TYPES[3..])
                    .copied()
                    .collect::<Vec<_>>(),
            ));
        }
        _ => return Err(ApiError::unsupported_media(&PATCH_TYPES)),
    };
    if t.sub() == "scale" {
        let replicas = new.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
        let mut n = (*old).clone();
        set_in(&mut n, &["spec", "replicas"], replicas);
        let t2 = Target {
            sub: None,
            ..t.clone()
        };
        let out = commit(st, &t2, &old, n, Some(&manager), dry)?;
        return Ok(Reply::Json(200, scale_of(&out, t)));
    }
    // A patch that does not name a resourceVersion is unconditional.
    if meta_str(&new, "resourceVersion") == meta_str(&base, "resourceVersion")
        && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.shift_remove("resourceVersion");
    }
    strict_fields(t, &new, p)?;
    let out = commit(st, t, &old, new, Some(&manager), dry)?;
    Ok(Reply::Json(200, served(&out, t)))
}

/// The `DeleteOptions` of a request (body or query).
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    /// Precondition on uid.
    pub uid: Option<String>,
    /// Precondition on resourceVersion.
    pub resource_version: Option<String>,
    /// dryRun=All.
    pub dry: bool,
}

/// Reads DeleteOptions from the body and query.
pub fn delete_options(p: &Params, body: &[u8]) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions {
        dry: p.dry_run()?,
        propagation: p.q("propagationPolicy").map(str::to_string),
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = decode(body, "application/json")?;
        if let Some(pp) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = Some(pp.into());
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            o.propagation = Some("Orphan".into());
        }
        o.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            o.dry = true;
        }
    }
    if let Some(pp) = &o.propagation
        && !matches!(pp.as_str(), "Background" | "Foreground" | "Orphan")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            &[(
                "propagationPolicy".into(),
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {pp:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            )],
        ));
    }
    Ok(o)
}

/// Deletes one object: immediately, or by marking it with deletionTimestamp when finalizers
/// (including those of foreground/orphan propagation) must run first. Returns the code and body.
pub fn delete_object(
    st: &mut State,
    t: &Target,
    name: &str,
    o: &DeleteOptions,
) -> ApiResult<(u16, Value)> {
    let key = t.key(name);
    let old = st
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.resource, name))?;
    if let Some(uid) = &o.uid
        && Some(uid.as_str()) != meta_str(&old, "uid")
    {
        return Err(ApiError::conflict(
            &t.rt.group,
            &t.rt.resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&old, "uid").unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &o.resource_version
        && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::conflict(
            &t.rt.group,
            &t.rt.resource,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&old, "resourceVersion").unwrap_or_default()
            ),
        ));
    }
    let is_ns = t.rt.resource == "namespaces" && t.rt.group.is_empty();
    let mut finalizers: Vec<Value> = old
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let extra = match o.propagation.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    let already = old.pointer("/metadata/deletionTimestamp").is_some();
    if let Some(f) = extra
        && !finalizers.iter().any(|x| x == f)
        && !already
    {
        finalizers.push(json!(f));
    }
    if finalizers.is_empty() && !is_ns {
        if o.dry {
            return Ok((200, served(&old, t)));
        }
        let gone = st.remove(&key)?.map(|g| (*g).clone()).unwrap_or_default();
        return Ok((200, served(&gone, t)));
    }
    let mut new = (*old).clone();
    {
        let m = meta_mut(&mut new);
        if !already {
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if !finalizers.is_empty() {
            m.insert("finalizers".into(), Value::Array(finalizers));
        }
    }
    if is_ns {
        set_in(&mut new, &["status", "phase"], json!("Terminating"));
    }
    if o.dry || (already && content(&new) == content(&old)) {
        return Ok((
            if extra == Some("foregroundDeletion") {
                202
            } else {
                200
            },
            served(&new, t),
        ));
    }
    let stored = st.put(key, new)?;
    Ok((
        if extra == Some("foregroundDeletion") {
            202
        } else {
            200
        },
        served(&stored, t),
    ))
}

/// DELETE of one object.
pub fn delete(st: &mut State, t: &Target, p: &Params, body: &[u8]) -> ApiResult<Reply> {
    let name = t.name.as_deref().unwrap_or_default().to_string();
    let o = delete_options(p, body)?;
    let (code, v) = delete_object(st, t, &name, &o)?;
    Ok(Reply::Json(code, v))
}

/// DELETE on a collection.
pub fn delete_collection(st: &mut State, t: &Target, p: &Params, body: &[u8]) -> ApiResult<Reply> {
    let o = delete_options(p, body)?;
    let sel = Selection::parse(t, p)?;
    let names: Vec<String> = st
        .list(t.rt.storage_group(), &t.rt.resource, t.namespace.as_deref())
        .into_iter()
        .filter(|(_, obj)| sel.matches(obj))
        .map(|(k, _)| k.name)
        .collect();
    let mut items = Vec::new();
    for n in names {
        let (_, v) = delete_object(st, t, &n, &o)?;
        items.push(v);
    }
    Ok(Reply::Json(
        200,
        json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.api_version(), "metadata": {"resourceVersion": st.rv().to_string()}, "items": items}),
    ))
}

/// The managed fields of an object as a set (used by tests and the bench).
pub fn owned_by(obj: &Value, manager: &str) -> FieldSet {
    ssa::read_entries(obj)
        .into_iter()
        .filter(|e| e.manager == manager)
        .fold(FieldSet::default(), |a, e| a.union(&e.set))
}
