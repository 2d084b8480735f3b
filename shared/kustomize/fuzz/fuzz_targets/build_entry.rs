//! A whole build over an in-memory tree must never panic. The input is a small archive:
//! files separated by `\n%%% <path>\n` headers; the entry directory is `k`.
#![no_main]

use kustomize::{MemFs, Options, build, print};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut fs = MemFs::new();
    fs.add("k/kustomization.yaml", "resources: [r.yaml]\n");
    for part in text.split("\n%%% ").skip(1) {
        let (path, content) = part.split_once('\n').unwrap_or((part, ""));
        if !path.is_empty() && !path.contains("..") {
            fs.add(&format!("k/{path}"), content);
        }
    }
    if let Some(first) = text.split("\n%%% ").next() {
        fs.add("k/r.yaml", first);
    }
    let opts = Options { generate_missing_kustomization: true, ..Default::default() };
    if let Ok(objs) = build(&fs, "k", &opts) {
        let _ = print(&objs);
    }
});
