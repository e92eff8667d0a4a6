//! Embeds the kernel programs built by `cargo xtask build`.
//!
//! xtask builds `enforcer-ebpf` with nightly and bpf-linker, then builds
//! this crate with `ENFORCER_EBPF_OBJECT` naming the object. A plain
//! `cargo build` (editors, clippy) embeds an empty object instead, and the
//! daemon says how to get a real one when it starts.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo::rerun-if-env-changed=ENFORCER_EBPF_OBJECT");
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("enforcer.bpf.o");
    let object = match env::var_os("ENFORCER_EBPF_OBJECT") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo::rerun-if-changed={}", path.display());
            fs::read(&path)
                .unwrap_or_else(|error| panic!("ENFORCER_EBPF_OBJECT={}: {error}", path.display()))
        }
        None => Vec::new(),
    };
    fs::write(&out, object).expect("write the embedded object");
}
