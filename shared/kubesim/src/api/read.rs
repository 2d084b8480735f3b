//! Reads: get (with Table and PartialObjectMetadata forms), list with selectors and
//! pagination, and the scale subresource view.

use super::*;

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

pub(super) fn scale_of(obj: &Value, t: &Target) -> Value {
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

pub(super) fn continue_token(rv: u64, start: &Key) -> String {
    let start = if start.namespace.is_empty() {
        format!("{}\u{0}", start.name)
    } else {
        format!("{}/{}\u{0}", start.namespace, start.name)
    };
    base64::engine::general_purpose::STANDARD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

pub(super) fn parse_continue(token: &str) -> ApiResult<(u64, String, String)> {
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
