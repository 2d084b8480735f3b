//! Deletion: DeleteOptions, preconditions, finalizers and propagation policies,
//! deletecollection, and namespace finalization.

use super::*;

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
    /// `orphanDependents: false`, the legacy form that makes a pending deletion answer 202.
    pub cascade_legacy: bool,
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
        match v.get("orphanDependents").and_then(Value::as_bool) {
            Some(true) => o.propagation = Some("Orphan".into()),
            Some(false) => o.cascade_legacy = true,
            None => {}
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
/// (including those of foreground/orphan propagation) must run first. Returns the code, the
/// object, and whether it is gone already.
pub fn delete_object(
    st: &mut State,
    t: &Target,
    name: &str,
    o: &DeleteOptions,
) -> ApiResult<(u16, Value, bool)> {
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
            return Ok((200, served(&old, t), true));
        }
        let gone = st.remove(&key)?.map(|g| (*g).clone()).unwrap_or_default();
        return Ok((200, served(&gone, t), true));
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
    // kube-apiserver answers 202 for a pending deletion only to the legacy orphanDependents=false.
    let code = if o.cascade_legacy { 202 } else { 200 };
    if o.dry || (already && content(&new) == content(&old)) {
        return Ok((code, served(&new, t), false));
    }
    let stored = st.put(key, new)?;
    Ok((code, served(&stored, t), false))
}

/// Whether kube-apiserver answers an immediate deletion with the object (`ReturnDeletedObject`
/// in its registry) rather than a Success Status.
fn returns_deleted_object(t: &Target) -> bool {
    t.rt.group.is_empty()
        && matches!(
            t.rt.resource.as_str(),
            "pods" | "serviceaccounts" | "persistentvolumeclaims" | "services" | "namespaces"
        )
}

/// DELETE of one object.
pub fn delete(st: &mut State, t: &Target, p: &Params, body: &[u8]) -> ApiResult<Reply> {
    let name = t.name.as_deref().unwrap_or_default().to_string();
    let o = delete_options(p, body)?;
    let (code, v, immediate) = delete_object(st, t, &name, &o)?;
    if immediate && !returns_deleted_object(t) {
        let mut details = json!({"name": name, "kind": t.rt.resource});
        if !t.rt.group.is_empty() {
            details["group"] = json!(t.rt.group);
        }
        if let Some(uid) = v.pointer("/metadata/uid") {
            details["uid"] = uid.clone();
        }
        return Ok(Reply::Json(200, status::success(Some(details))));
    }
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
        let (_, v, _) = delete_object(st, t, &n, &o)?;
        items.push(v);
    }
    Ok(Reply::Json(
        200,
        json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.api_version(), "metadata": {"resourceVersion": st.rv().to_string()}, "items": items}),
    ))
}
