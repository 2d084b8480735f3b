//! The field table of the built-in kinds' protobuf messages, generated from the Go types of
//! k8s.io/api and apimachinery (`tools/proto_table.py`; see its header for the line format).
//! Parsed on the first protobuf request only: JSON clients never pay for it.

use std::collections::HashMap;
use std::sync::OnceLock;

/// How a field's value is encoded and what JSON it becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Str,
    Int,
    Float,
    Bool,
    Bytes,
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    RawExtension,
    FieldsV1,
    Message(&'static str),
    Map(Box<Type>),
}

#[derive(Debug)]
pub struct FieldDef {
    pub json_name: &'static str,
    pub kind: Type,
    pub pointer: bool,
    pub repeated: bool,
    pub omit_empty: bool,
    pub inline: bool,
}

#[derive(Debug, Default)]
pub struct Message {
    /// In declaration order, as Go marshals them.
    pub fields: Vec<(u64, FieldDef)>,
}

impl Message {
    pub fn field(&self, number: u64) -> Option<(usize, &FieldDef)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, (n, _))| *n == number)
            .map(|(i, (_, def))| (i, def))
    }
}

#[derive(Debug, Default)]
pub struct Table {
    kinds: HashMap<(&'static str, &'static str), &'static str>,
    messages: HashMap<&'static str, Message>,
}

impl Table {
    /// The message of a top-level kind, e.g. ("apps/v1", "Deployment").
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&'static str> {
        self.kinds.get(&(api_version, kind)).copied()
    }

    pub fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }
}

pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse(include_str!("fields.tsv")))
}

fn parse_type(text: &'static str) -> Type {
    match text {
        "str" => Type::Str,
        "int" => Type::Int,
        "float" => Type::Float,
        "bool" => Type::Bool,
        "bytes" => Type::Bytes,
        "time" => Type::Time,
        "microtime" => Type::MicroTime,
        "duration" => Type::Duration,
        "quantity" => Type::Quantity,
        "intorstr" => Type::IntOrString,
        "rawext" => Type::RawExtension,
        "fieldsv1" => Type::FieldsV1,
        other => match (other.strip_prefix("msg:"), other.strip_prefix("map:")) {
            (Some(name), _) => Type::Message(name),
            (_, Some(value)) => Type::Map(Box::new(parse_type(value))),
            // The table is generated and checked by a test; an unknown word is a bytes field
            // the decoder reports rather than a panic.
            _ => Type::Bytes,
        },
    }
}

fn parse(text: &'static str) -> Table {
    let mut table = Table::default();
    let mut current: Option<&'static str> = None;
    for line in text.lines() {
        let cols: Vec<&'static str> = line.split('\t').collect();
        match cols.as_slice() {
            ["K", api_version, kind, message] => {
                table.kinds.insert((api_version, kind), message);
            }
            ["M", name] => {
                current = Some(name);
                table.messages.entry(name).or_default();
            }
            ["F", number, json_name, kind, flags] => {
                let (Some(message), Ok(number)) = (current, number.parse::<u64>()) else {
                    continue;
                };
                let def = FieldDef {
                    json_name,
                    kind: parse_type(kind),
                    pointer: flags.contains('p'),
                    repeated: flags.contains('r'),
                    omit_empty: flags.contains('o'),
                    inline: flags.contains('i'),
                };
                table
                    .messages
                    .entry(message)
                    .or_default()
                    .fields
                    .push((number, def));
            }
            _ => {}
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_message_is_in_the_table() {
        let table = table();
        for (name, message) in &table.messages {
            for (_, def) in &message.fields {
                let mut kind = &def.kind;
                while let Type::Map(inner) = kind {
                    kind = inner;
                }
                if let Type::Message(target) = kind {
                    assert!(table.message(target).is_some(), "{name} refers to {target}");
                }
            }
        }
        assert_eq!(
            table.kind("apps/v1", "Deployment"),
            Some("apps/v1.Deployment")
        );
        assert_eq!(table.kind("v1", "ConfigMap"), Some("core/v1.ConfigMap"));
    }
}
