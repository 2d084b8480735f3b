//! Links the `flotilla` binary as a static PIE where the C library allows it.
//!
//! `flotilla kustomize` is a short-lived process judged against `kubectl kustomize` as a whole
//! process: loading glibc, libm and libgcc_s at start-up (mapping them, resolving their symbols,
//! libgcc's CPU probe) is a sizeable share of its run. A static PIE skips all of that and keeps
//! address-space randomisation. glibc (2.34 and later) resolves hosts through files and DNS
//! inside libc, so name lookups keep working without loading NSS modules.
//!
//! rustc only links statically with `-C target-feature=+crt-static`, which cargo can give to one
//! binary only through RUSTFLAGS, where it also reaches proc-macros (and fails). So this script
//! adds `-static-pie` (it wins over rustc's earlier `-pie`) and a search directory that comes
//! before the system's, holding linker scripts named like the shared C libraries rustc asks for
//! (`-lc -lm -lgcc_s`) that point at their static archives. Only the `flotilla` binary is
//! affected; tests, benches and `crdgen` link as usual. Where the archives are missing (or when
//! cross-compiling) the binary links dynamically, as before.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(why) = static_pie() {
        println!("cargo:warning=flotilla links dynamically: {why}");
    }
}

fn static_pie() -> Result<(), String> {
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    if env("CARGO_CFG_TARGET_OS") != "linux" || env("CARGO_CFG_TARGET_ENV") != "gnu" {
        return Ok(());
    }
    if env("TARGET") != env("HOST") {
        return Err("cross-compiling, so the host's C archives would be the wrong ones".into());
    }
    let archive = |name: &str| archive_path(name).ok_or_else(|| format!("{name} not found"));
    let (libc, libm) = (archive("libc.a")?, archive("libm.a")?);
    let (gcc_eh, gcc) = (archive("libgcc_eh.a")?, archive("libgcc.a")?);

    let dir = PathBuf::from(env("OUT_DIR")).join("static-pie");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // libc and libgcc call each other: one group, as rustc's own crt-static link line does.
    let scripts = [
        (
            "libc.so",
            format!("GROUP({} {} {})\n", q(&libc), q(&gcc_eh), q(&gcc)),
        ),
        ("libm.so", format!("INPUT({})\n", q(&libm))),
        (
            "libgcc_s.so",
            format!("GROUP({} {})\n", q(&gcc_eh), q(&gcc)),
        ),
    ];
    for (name, script) in scripts {
        let path = dir.join(name);
        std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("cargo:rustc-link-arg-bin=flotilla=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bin=flotilla=-static-pie");
    Ok(())
}

/// Where the C compiler that links Rust binaries finds an archive, if it has it.
fn archive_path(name: &str) -> Option<PathBuf> {
    let out = Command::new("cc")
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // An archive the compiler does not know comes back as its bare name.
    (path.is_absolute() && path.is_file()).then(|| path.canonicalize().unwrap_or(path))
}

/// A path as a linker script operand.
fn q(path: &Path) -> String {
    format!("\"{}\"", path.display())
}
