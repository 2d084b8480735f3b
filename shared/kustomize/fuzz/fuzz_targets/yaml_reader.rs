//! The YAML reader and printer must never panic, whatever the bytes.
#![no_main]

use kustomize::yaml::{Limits, parse_documents, to_yaml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits { max_bytes: 1 << 20, max_depth: 64, max_nodes: 100_000 };
    if let Ok(docs) = parse_documents(text, limits) {
        for doc in docs.into_iter().flatten() {
            let _ = to_yaml(&doc);
        }
    }
});
