//! An object of every kind, including older served versions, parses into our types.

use std::collections::BTreeSet;

use api::parse::{Document, parse_yaml};

#[test]
fn an_example_of_every_kind_parses() {
    let text = include_str!("fixtures/every-kind.yaml");
    let documents = parse_yaml(text).unwrap_or_else(|e| panic!("{e}"));
    let mut kinds = BTreeSet::new();
    for document in &documents {
        match document {
            Document::Flux(object) => {
                kinds.insert(object.kind().to_string());
            }
            Document::Other { kind, .. } => panic!("unexpected non-Flux {kind}"),
        }
    }
    let expected: BTreeSet<String> = api::crd::KINDS.iter().map(|k| k.kind.to_string()).collect();
    assert_eq!(kinds, expected);
}

#[test]
fn every_legacy_version_in_the_examples_is_served() {
    let text = include_str!("fixtures/every-kind.yaml");
    for line in text.lines().filter(|l| l.starts_with("apiVersion: ")) {
        let api_version = line.trim_start_matches("apiVersion: ");
        let (group, version) = api_version.split_once('/').unwrap_or_default();
        assert!(
            api::crd::KINDS
                .iter()
                .any(|k| k.group == group && k.served_versions().any(|v| v == version)),
            "{api_version} is not served by any CRD"
        );
    }
}
