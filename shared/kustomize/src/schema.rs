//! Strategic-merge metadata of built-in Kubernetes types (merge keys and patch strategies),
//! from the checked-in table `builtin/schema.tsv` (see `tools/gen_schema.py`). The table is
//! indexed once, borrowing its text, so a short-lived process pays little for it.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("builtin/schema.tsv");

/// One field of a definition.
#[derive(Debug)]
pub struct Field {
    /// `o` object, `a` array, `s` scalar with patch metadata.
    pub kind: u8,
    /// The definition of the object, or of the array's elements.
    pub reference: Option<&'static str>,
    pub strategy: &'static str,
    pub keys: Vec<&'static str>,
}

#[derive(Debug, Default)]
pub struct Schema {
    /// apiVersion, then kind, to definition.
    types: HashMap<&'static str, HashMap<&'static str, &'static str>>,
    /// Definition, then field name, to the field.
    defs: HashMap<&'static str, HashMap<&'static str, Field>>,
}

impl Schema {
    pub fn get() -> &'static Schema {
        static S: OnceLock<Schema> = OnceLock::new();
        S.get_or_init(|| {
            let mut s = Schema::default();
            let mut cur: Option<&'static str> = None;
            for line in TABLE.lines() {
                let cols: Vec<&'static str> = line.split('\t').collect();
                match cols.as_slice() {
                    ["K", av, kind, def] => {
                        s.types.entry(av).or_default().insert(kind, def);
                    }
                    ["D", def] => cur = Some(def),
                    ["F", name, kind, reference, strategy, keys] => {
                        if let Some(d) = cur {
                            let f = Field {
                                kind: kind.as_bytes().first().copied().unwrap_or(b's'),
                                reference: (*reference != "-").then_some(*reference),
                                strategy: if *strategy == "-" { "" } else { strategy },
                                keys: if *keys == "-" {
                                    Vec::new()
                                } else {
                                    keys.split(',').collect()
                                },
                            };
                            s.defs.entry(d).or_default().insert(name, f);
                        }
                    }
                    _ => {}
                }
            }
            s
        })
    }

    /// The definition of a top-level type.
    pub fn type_def(&self, api_version: &str, kind: &str) -> Option<&'static str> {
        self.types.get(api_version)?.get(kind).copied()
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
        let spec = s.field(d, "spec").and_then(|f| f.reference).expect("spec");
        let tmpl = s
            .field(spec, "template")
            .and_then(|f| f.reference)
            .expect("template");
        let pspec = s
            .field(tmpl, "spec")
            .and_then(|f| f.reference)
            .expect("pod spec");
        let c = s.field(pspec, "containers").expect("containers");
        assert_eq!(c.strategy, "merge");
        assert_eq!(c.keys, ["name"]);
    }
}
