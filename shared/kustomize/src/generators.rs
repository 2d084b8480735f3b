//! configMapGenerator and secretGenerator, behaviors, and kustomize's content-hash name suffix.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::build::{Acc, Builder};
use crate::error::{Error, Result};
use crate::fs::{EntryKind, join};
use crate::kustomization::{GeneratorArgs, GeneratorOptions, Kustomization};
use crate::resource::{Behavior, Object, ResId, string_map};
use crate::yaml::{Node, go_json, go_json_string};

fn merged_options(local: &GeneratorOptions, global: Option<&GeneratorOptions>) -> GeneratorOptions {
    let Some(g) = global else {
        return local.clone();
    };
    let mut o = local.clone();
    let merge = |base: &[(String, String)], over: &[(String, String)]| {
        let mut m: Vec<(String, String)> = base.to_vec();
        for (k, v) in over {
            if let Some(e) = m.iter_mut().find(|e| e.0 == *k) {
                e.1 = v.clone();
            } else {
                m.push((k.clone(), v.clone()));
            }
        }
        m
    };
    o.labels = merge(&g.labels, &local.labels);
    o.annotations = merge(&g.annotations, &local.annotations);
    // Either level disabling the hash disables it, as kustomize merges the two booleans.
    o.disable_name_suffix_hash = local.disable_name_suffix_hash || g.disable_name_suffix_hash;
    o.immutable = local.immutable || g.immutable;
    o
}

fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// A file a generator reads, checked as kustomize's loader checks it: existence first
/// (so a missing file outside the root reads as missing), then confinement to `dir`.
fn read_source(b: &Builder, dir: &str, rel: &str) -> Result<Vec<u8>> {
    let p = join(dir, rel)?;
    match b.fs.kind(&p) {
        None => {
            return Err(Error::msg(b.missing(&p)));
        }
        Some(EntryKind::Dir) => {
            return Err(Error::msg(format!("'{p}' must resolve to a file")));
        }
        Some(EntryKind::File) => {}
    }
    b.read_file(dir, rel)
}

/// The lines of an env file as kustomize reads them: `KEY=value`, `KEY` alone for an empty
/// value; blank lines and `#` comments skipped; no quote or `export` handling.
fn env_pairs(bytes: &[u8], out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut lines: Vec<&[u8]> = bytes.split(|&c| c == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            let numbers: Vec<String> = line.iter().map(u8::to_string).collect();
            return Err(Error::msg(format!(
                "line [{}] has invalid utf8 bytes : {}",
                numbers.join(" "),
                String::from_utf8_lossy(line)
            )));
        };
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        // A line without a key (`=value`) is skipped like a blank one.
        if !k.is_empty() {
            out.push((k.to_string(), v.as_bytes().to_vec()));
        }
    }
    Ok(())
}

/// kustomize's `ParseFileSource`: `path` (keyed by its base name) or `key=path`.
fn parse_file_source(source: &str) -> Result<(String, String)> {
    let separators = source.matches('=').count();
    if separators == 0 {
        let trimmed = source.trim_end_matches('/');
        let key = if trimmed.is_empty() {
            if source.is_empty() { "." } else { "/" }
        } else {
            trimmed.rsplit('/').next().unwrap_or(trimmed)
        };
        return Ok((key.to_string(), source.to_string()));
    }
    if separators > 1 {
        return Err(Error::msg(format!(
            "source {source:?} key name or file path contains '='"
        )));
    }
    let (key, path) = source.split_once('=').unwrap_or((source, ""));
    if key.is_empty() {
        return Err(Error::msg(format!(
            "missing key name for file path {path:?} in source {source:?}"
        )));
    }
    if path.is_empty() {
        return Err(Error::msg(format!(
            "missing file path for key name {key:?} in source {source:?}"
        )));
    }
    Ok((key.to_string(), path.to_string()))
}

/// Go's `%v` of a string list.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// The key/value pairs of a generator, in kustomize's order (envs, literals, files).
fn pairs(b: &Builder, dir: &str, a: &GeneratorArgs) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let loading = |e: Error, what: &str, list: &[String]| {
        e.context(format!("{what}{}", go_list(list)))
            .context("loading KV pairs")
    };
    for e in &a.envs {
        read_source(b, dir, e)
            .and_then(|bytes| env_pairs(&bytes, &mut out))
            .map_err(|err| loading(err, "env source files: ", &a.envs))?;
    }
    for l in &a.literals {
        let Some((k, v)) = l.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(loading(
                Error::msg(format!("invalid literal source {l}, expected key=value")),
                "literal sources ",
                &a.literals,
            ));
        };
        out.push((k.to_string(), remove_quotes(v).as_bytes().to_vec()));
    }
    for f in &a.files {
        let (key, path) =
            parse_file_source(f).map_err(|e| loading(e, "file sources: ", &a.files))?;
        let bytes =
            read_source(b, dir, &path).map_err(|e| loading(e, "file sources: ", &a.files))?;
        out.push((key, bytes));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &out {
        if !seen.insert(k.as_str()) {
            return Err(Error::msg(format!(
                "configmap {} illegally repeats the key `{k}`",
                a.name
            )));
        }
    }
    Ok(out)
}

fn make(
    b: &Builder,
    dir: &str,
    a: &GeneratorArgs,
    secret: bool,
    global: Option<&GeneratorOptions>,
) -> Result<Object> {
    let opts = merged_options(&a.options, global);
    let mut meta = vec![("name".to_string(), Node::str(a.name.as_str()))];
    if !a.namespace.is_empty() {
        meta.push(("namespace".into(), Node::str(a.namespace.as_str())));
    }
    if !opts.labels.is_empty() {
        meta.push((
            "labels".into(),
            Node::Map(
                opts.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::str(v.as_str())))
                    .collect(),
            ),
        ));
    }
    if !opts.annotations.is_empty() {
        meta.push((
            "annotations".into(),
            Node::Map(
                opts.annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::str(v.as_str())))
                    .collect(),
            ),
        ));
    }
    if a.name.is_empty() {
        return Err(Error::msg("a configmap must have a name"));
    }
    let base64 = |v: &[u8]| Node::str(base64::engine::general_purpose::STANDARD.encode(v));
    let mut data = Vec::new();
    let mut binary = Vec::new();
    for (k, v) in pairs(b, dir, a)? {
        crate::build::check_created_key(&k)?;
        if secret {
            data.push((k, base64(&v)));
        } else {
            match String::from_utf8(v) {
                Ok(text) => data.push((k, Node::str(text))),
                Err(e) => binary.push((k, base64(e.as_bytes()))),
            }
        }
    }
    for (k, _) in opts.labels.iter().chain(&opts.annotations) {
        crate::build::check_created_key(k)?;
    }
    let mut node = Node::Map(vec![
        ("apiVersion".into(), Node::str("v1")),
        (
            "kind".into(),
            Node::str(if secret { "Secret" } else { "ConfigMap" }),
        ),
        ("metadata".into(), Node::Map(meta)),
    ]);
    // kustomize creates a Secret's data map even when empty; a ConfigMap's only when used.
    if secret || !data.is_empty() {
        node.set("data", Node::Map(data));
    }
    if !binary.is_empty() {
        node.set("binaryData", Node::Map(binary));
    }
    if secret {
        let t = if a.secret_type.is_empty() {
            "Opaque"
        } else {
            a.secret_type.as_str()
        };
        node.set("type", Node::str(t));
    }
    if opts.immutable {
        node.set("immutable", Node::plain("true"));
    }
    let mut o = Object::new(node);
    o.needs_hash = !opts.disable_name_suffix_hash;
    o.behavior = match a.behavior.as_str() {
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        // kustomize reads any other word as unspecified, which creates.
        _ => Behavior::Create,
    };
    Ok(o)
}

/// The builtin ConfigMap and Secret generators configured in a `generators:` file, in its
/// order, each with its origin (configuredIn and configuredBy, as kustomize records them).
fn external(b: &Builder, dir: &str, k: &Kustomization) -> Result<Vec<(Object, String)>> {
    let mut out = Vec::new();
    for file in &k.generators {
        let p = b.file_in(dir, file)?;
        if b.fs.kind(&p).is_none() {
            let missing = b.missing(&p);
            return Err(Error::msg(format!(
                "loading generator plugins: accumulation err='accumulating resources from '{file}': {missing}': must build at directory: not a valid directory: {missing}"
            )));
        }
        let docs = crate::build::read_yaml(b.fs, &p, b.opts.limits)?;
        for d in crate::build::objects_from_docs(docs)? {
            let d = d.node;
            let secret = match (d.str_at(&["apiVersion"]), d.str_at(&["kind"])) {
                (Some("builtin"), Some("ConfigMapGenerator")) => false,
                (Some("builtin"), Some("SecretGenerator")) => true,
                (av, kind) => {
                    return Err(Error::msg(format!(
                        "loading generator plugins: failed to load generator: {}",
                        crate::build::plugin_refusal(av.unwrap_or(""), kind.unwrap_or(""))
                    )));
                }
            };
            let mut args = crate::kustomization::generator(&d)?;
            let (name, ns) = (
                d.str_at(&["metadata", "name"]).unwrap_or(""),
                d.str_at(&["metadata", "namespace"]).unwrap_or(""),
            );
            if args.name.is_empty() {
                args.name = name.to_string();
            }
            if args.namespace.is_empty() {
                args.namespace = ns.to_string();
            }
            let origin = crate::build::configured_origin(
                &b.origin_path(&p),
                d.str_at(&["kind"]).unwrap_or(""),
                name,
                ns,
            );
            out.push((make(b, dir, &args, secret, None)?, origin));
        }
    }
    Ok(out)
}

/// Runs a kustomization's generators and absorbs their output as kustomize does.
pub(crate) fn run(b: &Builder, dir: &str, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    // Generators are all configured before any runs; a chart cannot be without helm.
    if let Some(chart) = k.helm_charts.first() {
        return Err(Error::msg(format!(
            "trouble configuring builtin HelmChartInflationGenerator with config: `\n{}`: must specify --enable-helm",
            crate::yaml::to_yaml(chart)?
        )));
    }
    let global = k.generator_options.as_ref();
    let mut generated = Vec::new();
    for a in &k.config_map_generator {
        generated.push(make(b, dir, a, false, global)?);
    }
    for a in &k.secret_generator {
        generated.push(make(b, dir, a, true, global)?);
    }
    let configmaps = k.config_map_generator.len();
    for (i, mut g) in generated.into_iter().enumerate() {
        if b.track_origins {
            let kind = if i < configmaps {
                "ConfigMapGenerator"
            } else {
                "SecretGenerator"
            };
            crate::build::add_origin(
                std::slice::from_mut(&mut g),
                &b.builtin_origin(dir, k, kind),
            );
        }
        absorb(acc, g)?;
    }
    for (mut g, origin) in external(b, dir, k)? {
        if b.track_origins {
            crate::build::add_origin(std::slice::from_mut(&mut g), &origin);
        }
        absorb(acc, g)?;
    }
    Ok(())
}

/// Go's `%#v` of a generated object's `resid.ResId`, as kustomize's merge errors print it.
fn go_res_id(id: &ResId) -> String {
    format!(
        "resid.ResId{{Gvk:resid.Gvk{{Group:{:?}, Version:{:?}, Kind:{:?}, isClusterScoped:false}}, Name:{:?}, Namespace:{:?}}}",
        id.gvk.group, id.gvk.version, id.gvk.kind, id.name, id.namespace
    )
}

fn absorb(acc: &mut Acc, mut g: Object) -> Result<()> {
    let id = g.cur_id();
    let refuse = |what: &str| {
        Error::msg(format!(
            "merging from generator: id {} {what}",
            go_res_id(&id)
        ))
    };
    let matches: Vec<usize> = acc
        .objs
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.node.as_map().is_some_and(|m| !m.is_empty()) && o.all_ids().any(|i| i.equals(&id))
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => match g.behavior {
            Behavior::Create => acc.append(g),
            _ => Err(refuse("does not exist; cannot merge or replace")),
        },
        [i] => {
            let old = &acc.objs[*i];
            match g.behavior {
                Behavior::Create => {
                    return Err(refuse("exists; behavior must be merge or replace"));
                }
                Behavior::Merge => {
                    // kustomize merges the two as string maps and writes the result back as
                    // strings (no field when empty).
                    for field in ["data", "binaryData"] {
                        let mut merged = string_map(old.node.get(field));
                        for (k, v) in string_map(g.node.get(field)) {
                            if let Some(e) = merged.iter_mut().find(|e| e.0 == k) {
                                e.1 = v;
                            } else {
                                merged.push((k, v));
                            }
                        }
                        g.node.remove(field);
                        if !merged.is_empty() {
                            g.node.set(
                                field,
                                Node::Map(
                                    merged.into_iter().map(|(k, v)| (k, Node::str(v))).collect(),
                                ),
                            );
                        }
                    }
                }
                Behavior::Replace => {}
            }
            for field in ["labels", "annotations"] {
                let mut merged = old.meta_map(field);
                for (k, v) in g.meta_map(field) {
                    if let Some(e) = merged.iter_mut().find(|e| e.0 == k) {
                        e.1 = v;
                    } else {
                        merged.push((k, v));
                    }
                }
                if !merged.is_empty()
                    && let Some(meta) = g.node.entry_map("metadata")
                {
                    meta.set(
                        field,
                        Node::Map(merged.into_iter().map(|(k, v)| (k, Node::str(v))).collect()),
                    );
                }
            }
            if g.behavior == Behavior::Merge {
                crate::build::keep_origin(old, &mut g);
            }
            let (name, ns) = (old.name().to_string(), old.namespace().to_string());
            g.set_name(&name);
            if ns.is_empty() {
                if let Some(meta) = g.node.get_mut("metadata") {
                    meta.remove("namespace");
                }
            } else {
                g.set_namespace(&ns);
            }
            g.prev_ids = old.prev_ids.clone();
            g.prefixes = old.prefixes.clone();
            g.suffixes = old.suffixes.clone();
            // kustomize keeps the hash only when both had it: build annotations come from the
            // old object, and the new one drops the hash mark it does not carry itself.
            g.needs_hash = old.needs_hash && g.needs_hash;
            g.behavior = Behavior::Create;
            acc.objs[*i] = g;
            Ok(())
        }
        _ => Err(Error::msg(format!(
            "found multiple objects that could accept merge of {id}"
        ))),
    }
}

/// The hash of a ConfigMap or Secret as kustomize computes it.
pub fn content_hash(o: &Object) -> Result<String> {
    let field_json = |f: &str| -> Result<String> {
        Ok(match o.node.get(f) {
            None => "\"\"".to_string(),
            Some(n @ Node::Scalar(_)) => {
                let mut s = String::new();
                go_json_string(n.as_str().unwrap_or(""), &mut s);
                s
            }
            Some(n) => go_json(n)?,
        })
    };
    // kustomize looks the name up with the single key "metadata/name", which never exists,
    // so every hash is computed with an empty name.
    let name = "\"\"";
    let encoded = match o.kind() {
        "ConfigMap" => {
            let mut s = String::new();
            if matches!(o.node.get("binaryData"), Some(Node::Map(_))) {
                s.push_str(&format!("{{\"binaryData\":{},", field_json("binaryData")?));
            } else {
                s.push('{');
            }
            s.push_str(&format!(
                "\"data\":{},\"kind\":\"ConfigMap\",\"name\":{name}}}",
                field_json("data")?
            ));
            s
        }
        "Secret" => {
            let mut s = format!(
                "{{\"data\":{},\"kind\":\"Secret\",\"name\":{name},",
                field_json("data")?
            );
            if matches!(o.node.get("stringData"), Some(Node::Map(_))) {
                s.push_str(&format!("\"stringData\":{},", field_json("stringData")?));
            }
            s.push_str(&format!("\"type\":{}}}", field_json("type")?));
            s
        }
        _ => go_json(&o.node)?,
    };
    let hex = format!("{:x}", Sha256::digest(encoded.as_bytes()));
    Ok(hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect())
}

/// Appends the content hash to the names of generated objects that want one.
pub(crate) fn add_hashes(objs: &mut [Object]) -> Result<()> {
    for o in objs.iter_mut().filter(|o| o.needs_hash) {
        let h = content_hash(o)?;
        o.store_previous_id();
        let name = format!("{}-{h}", o.name());
        o.set_name(&name);
        o.needs_hash = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testutil::{ok, run};

    #[test]
    fn config_maps_get_kustomizes_content_hash_and_references_follow() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "configMapGenerator:\n- name: cfg\n  literals: [A=1]\nresources: [p.yaml]\n",
                ),
                (
                    "k/p.yaml",
                    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  volumes:\n  - name: c\n    configMap:\n      name: cfg\n",
                ),
            ],
            "k",
        );
        // sha256 of {"data":{"A":"1"},"kind":"ConfigMap","name":""}, kustomize-encoded.
        let name = out
            .lines()
            .find(|l| l.starts_with("  name: cfg-"))
            .expect("hashed name")
            .trim_start_matches("  name: ");
        assert!(out.contains(&format!("      name: {name}\n")), "{out}");
    }

    #[test]
    fn secrets_are_base64_encoded_and_typed_opaque() {
        let out = ok(
            &[(
                "k/kustomization.yaml",
                "secretGenerator:\n- name: s\n  literals: [pw=x]\ngeneratorOptions:\n  disableNameSuffixHash: true\n",
            )],
            "k",
        );
        assert_eq!(
            out,
            "apiVersion: v1\ndata:\n  pw: eA==\nkind: Secret\nmetadata:\n  name: s\ntype: Opaque\n"
        );
    }

    #[test]
    fn merging_into_a_missing_generator_fails() {
        let err = run(
            &[(
                "k/kustomization.yaml",
                "configMapGenerator:\n- name: c\n  behavior: merge\n  literals: [a=b]\n",
            )],
            "k",
        )
        .expect_err("nothing to merge into");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
