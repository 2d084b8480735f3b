//! Helpers for unit tests: build an in-memory tree and print it.

use crate::{MemFs, Options, Result, build, print};

/// Builds directory `entry` of a tree given as (path, content) pairs and prints it.
pub(crate) fn run(files: &[(&str, &str)], entry: &str) -> Result<String> {
    let mut fs = MemFs::new();
    for (p, c) in files {
        fs.add(p, *c);
    }
    print(&build(&fs, entry, &Options::default())?)
}

/// Like [`run`], panicking with the error on failure.
pub(crate) fn ok(files: &[(&str, &str)], entry: &str) -> String {
    match run(files, entry) {
        Ok(s) => s,
        Err(e) => panic!("build failed: {e}"),
    }
}
