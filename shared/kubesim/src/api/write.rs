//! Writes: create, update and the four patch types, through one commit path that applies
//! preconditions, status-subresource rules, defaulting, validation, generation and ownership.

use super::*;

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
    Ok(Reply::Json(201, into_served(created, t)))
}

pub(super) fn strict_fields(t: &Target, obj: &Value, p: &Params) -> ApiResult<()> {
    // Warn is kube-apiserver's default since v1.23: unknown fields are dropped with a warning.
    let mode = p.q("fieldValidation").unwrap_or("Warn");
    if t.rt.builtin || mode == "Ignore" {
        return Ok(());
    }
    if !matches!(mode, "Warn" | "Strict") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: {mode}; valid values are Ignore, Warn, Strict"
        )));
    }
    let unknown = crate::crd::unknown_fields(&t.rt, &t.version, obj);
    if unknown.is_empty() {
        return Ok(());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if mode == "Warn" {
        p.warn(msgs);
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "strict decoding error: {}",
        msgs.join(", ")
    )))
}

/// Creates `obj` (already decoded, and taken: it is left empty); `applied` carries the
/// managedFields of a server-side apply.
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
    // The caller is done with `obj`: hand it over rather than copy it.
    if dry {
        return Ok(std::mem::take(obj));
    }
    let stored = st.put(key, std::mem::take(obj))?;
    Ok((*stored).clone())
}

/// Shared tail of update, patch and apply: preconditions, immutable fields, status handling,
/// generation, no-op detection, finalizer completion.
pub(super) fn commit(
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
pub(super) fn immutable(
    t: &Target,
    old: &Value,
    new: &Value,
) -> Vec<(String, &'static str, String)> {
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

/// A PUT or PATCH of the scale subresource: only `spec.replicas` changes, owned by the
/// writer under the subresource's own managedFields entry.
fn write_scale(
    st: &mut State,
    t: &Target,
    old: &Value,
    new: &Value,
    manager: &str,
    dry: bool,
) -> ApiResult<Reply> {
    let replicas = new.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
    let mut n = old.clone();
    set_in(&mut n, &["spec", "replicas"], replicas);
    let whole = Target {
        sub: None,
        ..t.clone()
    };
    let scope = Scope {
        rt: &t.rt,
        version: &t.version,
        subresource: "scale",
    };
    ssa::track_update(&scope, Some(old), &mut n, manager);
    let out = commit(st, &whole, old, n, None, dry)?;
    Ok(Reply::Json(200, scale_of(&out, t)))
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
        return write_scale(st, t, &old, &new, &manager, dry);
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
        return Ok(Reply::Json(200, into_served(out, t)));
    }
    strict_fields(t, &new, p)?;
    let out = commit(st, t, &old, new, Some(&manager), dry)?;
    Ok(Reply::Json(200, into_served(out, t)))
}

pub(super) const PATCH_TYPES: [&str; 4] = [
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
        let manager = p
            .q("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    &[(
                        "fieldManager".into(),
                        "FieldValueRequired",
                        "Required value: is required for apply patch".into(),
                    )],
                )
            })?
            .to_string();
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
                Ok(Reply::Json(201, into_served(created, t)))
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
                Ok(Reply::Json(200, into_served(out, t)))
            }
        };
    }
    if p.q("force").is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[(
                "force".into(),
                "FieldValueForbidden",
                "Forbidden: may not be specified for non-apply patch".into(),
            )],
        ));
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
        return write_scale(st, t, &old, &new, &manager, dry);
    }
    // A patch that does not name a resourceVersion is unconditional.
    if meta_str(&new, "resourceVersion") == meta_str(&base, "resourceVersion")
        && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.shift_remove("resourceVersion");
    }
    strict_fields(t, &new, p)?;
    let out = commit(st, t, &old, new, Some(&manager), dry)?;
    Ok(Reply::Json(200, into_served(out, t)))
}
