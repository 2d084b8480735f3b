//! Strategic-merge metadata of built-in Kubernetes types (merge keys and patch strategies),
//! loaded from the checked-in table `builtin/schema.tsv` (see `tools/gen_schema.py`).

use std::collections::HashMap;
use std::sync::OnceLock;

/// One field of a definition.
#[derive(Debug)]
pub struct Field {
    /// `o` object, `a` array, `s` scalar with patch metadata.
    pub kind: u8,
    /// The definition of the object, or of the array's elements.
    pub reference: Option<String>,
    pub strategy: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Schema {
    types: HashMap<(String, String), String>,
    defs: HashMap<String, HashMap<String, Field>>,
}

impl Schema {
    pub fn get() -> &'static Schema {
        static S: OnceLock<Schema> = OnceLock::new();
        S.get_or_init(|| {
            let mut s = Schema::default();
            let mut cur: Option<String> = None;
            for line in include_str!("builtin/schema.tsv").lines() {
                let cols: Vec<&str> = line.split('\t').collect();
                match cols.as_slice() {
                    ["K", av, kind, def] => {
                        s.types
                            .insert((av.to_string(), kind.to_string()), def.to_string());
                    }
                    ["D", def] => cur = Some(def.to_string()),
                    ["F", name, kind, reference, strategy, keys] => {
                        if let Some(d) = &cur {
                            let f = Field {
                                kind: kind.as_bytes().first().copied().unwrap_or(b's'),
                                reference: (*reference != "-").then(|| reference.to_string()),
                                strategy: if *strategy == "-" {
                                    String::new()
                                } else {
                                    strategy.to_string()
                                },
                                keys: if *keys == "-" {
                                    Vec::new()
                                } else {
                                    keys.split(',').map(str::to_string).collect()
                                },
                            };
                            s.defs
                                .entry(d.clone())
                                .or_default()
                                .insert(name.to_string(), f);
                        }
                    }
                    _ => {}
                }
            }
            s
        })
    }

    /// The definition of a top-level type.
    pub fn type_def(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.types
            .get(&(api_version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    pub fn field(&self, def: &str, name: &str) -> Option<&Field> {
        self.defs.get(def)?.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_spec_containers_merge_by_name() {
        let s = Schema::get();
        let d = s.type_def("apps/v1", "Deployment").expect("deployment");
        let spec = s
            .field(d, "spec")
            .and_then(|f| f.reference.clone())
            .expect("spec");
        let tmpl = s
            .field(&spec, "template")
            .and_then(|f| f.reference.clone())
            .expect("template");
        let pspec = s
            .field(&tmpl, "spec")
            .and_then(|f| f.reference.clone())
            .expect("pod spec");
        let c = s.field(&pspec, "containers").expect("containers");
        assert_eq!(c.strategy, "merge");
        assert_eq!(c.keys, ["name"]);
    }
}
