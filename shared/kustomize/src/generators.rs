//! configMapGenerator and secretGenerator, behaviors, and kustomize's content-hash name suffix.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::build::{Acc, Builder};
use crate::error::{Error, Result};
use crate::kustomization::{GeneratorArgs, GeneratorOptions, Kustomization};
use crate::resource::{Behavior, Object};
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
    if o.disable_name_suffix_hash.is_none() {
        o.disable_name_suffix_hash = g.disable_name_suffix_hash;
    }
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

/// The key/value pairs of a generator, in kustomize's order (envs, literals, files).
fn pairs(b: &Builder, dir: &str, a: &GeneratorArgs) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in &a.envs {
        let bytes = b.read_file(dir, e)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::msg(format!("{e}: not UTF-8")))?;
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = if i == 0 {
                line.trim_start_matches('\u{feff}')
            } else {
                line
            };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            out.push((k.to_string(), v.to_string()));
        }
    }
    for l in &a.literals {
        let Some((k, v)) = l.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::msg(format!(
                "invalid literal source {l}, expected key=value"
            )));
        };
        out.push((k.to_string(), remove_quotes(v).to_string()));
    }
    for f in &a.files {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) => {
                if k.is_empty() || p.is_empty() {
                    return Err(Error::msg(format!(
                        "file source {f}: key and path must not be empty"
                    )));
                }
                (k.to_string(), p.to_string())
            }
            None => (f.rsplit('/').next().unwrap_or(f).to_string(), f.clone()),
        };
        let bytes = b.read_file(dir, &path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::msg(format!("{path}: binary files are not supported")))?;
        out.push((key, text));
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
    let data: Vec<(String, Node)> = pairs(b, dir, a)?
        .into_iter()
        .map(|(k, v)| {
            let v = if secret {
                base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
            } else {
                v
            };
            (k, Node::str(v))
        })
        .collect();
    let mut node = Node::Map(vec![
        ("apiVersion".into(), Node::str("v1")),
        (
            "kind".into(),
            Node::str(if secret { "Secret" } else { "ConfigMap" }),
        ),
        ("metadata".into(), Node::Map(meta)),
    ]);
    if !data.is_empty() {
        node.set("data", Node::Map(data));
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
    o.needs_hash = opts.disable_name_suffix_hash != Some(true);
    o.behavior = match a.behavior.as_str() {
        "" | "create" => Behavior::Create,
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        other => return Err(Error::msg(format!("invalid behavior '{other}'"))),
    };
    Ok(o)
}

/// Runs a kustomization's generators and absorbs their output as kustomize does.
pub(crate) fn run(b: &Builder, dir: &str, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    let global = k.generator_options.as_ref();
    let mut generated = Vec::new();
    for a in &k.config_map_generator {
        generated.push(make(b, dir, a, false, global)?);
    }
    for a in &k.secret_generator {
        generated.push(make(b, dir, a, true, global)?);
    }
    for g in generated {
        absorb(acc, g)?;
    }
    Ok(())
}

fn absorb(acc: &mut Acc, mut g: Object) -> Result<()> {
    let id = g.cur_id();
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
            _ => Err(Error::msg(format!(
                "id {id} does not exist; cannot merge or replace"
            ))),
        },
        [i] => {
            let old = &acc.objs[*i];
            match g.behavior {
                Behavior::Create => {
                    return Err(Error::msg(format!(
                        "id {id} exists; behavior must be merge or replace"
                    )));
                }
                Behavior::Merge => {
                    for field in ["data", "binaryData"] {
                        if let Some(Node::Map(old_data)) = old.node.get(field) {
                            let mut merged = old_data.clone();
                            for (k, v) in g
                                .node
                                .get(field)
                                .and_then(Node::as_map)
                                .cloned()
                                .unwrap_or_default()
                            {
                                if let Some(e) = merged.iter_mut().find(|e| e.0 == k) {
                                    e.1 = v;
                                } else {
                                    merged.push((k, v));
                                }
                            }
                            g.node.set(field, Node::Map(merged));
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
