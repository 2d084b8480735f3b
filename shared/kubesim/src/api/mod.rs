//! The REST verbs on resources: get, list, create, update, patch (all types), delete and
//! deletecollection, with kube-apiserver's object semantics (uid, generation, resourceVersion
//! preconditions, finalizers, dry runs, status subresource, managed fields).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::meta::{name_errors, name_rule, now};
use crate::patch;
use crate::registry::ResourceType;
use crate::schema::Cursor;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::Sim;
use crate::ssa::{self, Scope};
use crate::status::{self, ApiError, ApiResult};
use crate::store::{Key, State};
use crate::table;

mod delete;
mod json;
mod read;
mod write;

pub use delete::*;
pub use read::*;
pub use write::*;

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
    /// Warnings for the `Warning` response header (unknown fields under `fieldValidation=Warn`).
    pub warnings: std::cell::RefCell<Vec<String>>,
}

impl Params {
    /// Records warnings for the response.
    pub fn warn(&self, msgs: Vec<String>) {
        self.warnings.borrow_mut().extend(msgs);
    }

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
        // Clients send apply patches as JSON (YAML's subset), which a JSON parser reads far
        // faster; anything it does not take as-is (YAML proper, duplicate keys) goes to the
        // YAML reader, which decides and words any error as before.
        if let Some(v) = json::parse_unique_keys(body) {
            return object_or_error(v);
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    object_or_error(v)
}

fn object_or_error(v: Value) -> ApiResult<Value> {
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body: the body must be a JSON object",
        ));
    }
    Ok(v)
}

pub(super) fn meta_str<'v>(obj: &'v Value, k: &str) -> Option<&'v str> {
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
    if t.rt.is_events_v1() {
        with_type(crate::events::to_events_v1(obj), t)
    } else {
        with_type(obj.clone(), t)
    }
}

/// [`served`] for an object the caller no longer needs.
pub fn into_served(obj: Value, t: &Target) -> Value {
    if t.rt.is_events_v1() {
        with_type(crate::events::to_events_v1(&obj), t)
    } else {
        with_type(obj, t)
    }
}

fn with_type(mut o: Value, t: &Target) -> Value {
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

pub(super) fn check_type(obj: &Value, t: &Target) -> ApiResult<()> {
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

pub(super) fn validate(obj: &Value, t: &Target) -> ApiResult<()> {
    let name = meta_str(obj, "name").unwrap_or_default();
    let mut causes = Vec::new();
    for e in name_errors(name, name_rule(&t.rt.group, &t.rt.resource)) {
        causes.push((
            "metadata.name".to_string(),
            "FieldValueInvalid",
            format!("Invalid value: {:?}: {e}", name),
        ));
    }
    for field in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{field}")) {
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let path = format!("metadata.{field}");
                    for e in crate::meta::qualified_name_errors(k) {
                        causes.push((
                            path.clone(),
                            "FieldValueInvalid",
                            format!("Invalid value: {k:?}: {e}"),
                        ));
                    }
                    match v.as_str() {
                        Some(s) if field == "labels" => {
                            if let Some(e) = crate::meta::label_value_error(s) {
                                causes.push((
                                    path.clone(),
                                    "FieldValueInvalid",
                                    format!("Invalid value: {s:?}: {e}"),
                                ));
                            }
                        }
                        Some(_) => {}
                        None => causes.push((
                            format!("{path}.{k}"),
                            "FieldValueTypeInvalid",
                            format!("Invalid value: {v}: must be a string"),
                        )),
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => causes.push((
                format!("metadata.{field}"),
                "FieldValueTypeInvalid",
                format!("Invalid value: {other}: must be a map of strings"),
            )),
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

pub(super) fn ensure_namespace(
    st: &State,
    t: &Target,
    creating: bool,
    name: &str,
) -> ApiResult<()> {
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

pub(super) const GENERATE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub(super) fn generated_name(base: &str) -> String {
    let mut b = [0u8; 5];
    crate::tls::random_bytes(&mut b);
    let suffix: String = b
        .iter()
        .map(|x| GENERATE_CHARS[*x as usize % GENERATE_CHARS.len()] as char)
        .collect();
    let base: String = base.chars().take(58).collect();
    format!("{base}{suffix}")
}

pub(super) fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.shift_remove(k);
        }
    }
    v
}

/// Everything but volatile metadata, to detect no-op writes (which kube-apiserver skips).
pub(super) fn content(obj: &Value) -> Value {
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
pub(super) fn prepare_create(sim: &Sim, t: &Target, obj: &mut Value) {
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

pub(super) fn prepare_update(t: &Target, old: &Value, new: &mut Value) {
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
