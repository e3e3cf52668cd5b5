//! Builds the adapter plugins (their own cargo workspace, for wasm32-wasip2)
//! once per test build and tells the tests where the components are.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let here =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = here
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf();
    let plugins = root.join("plugins");
    watch(&plugins, &root.join("wit"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&plugins)
        // The outer build's settings must not leak into the plugins' build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        // Under `cargo clippy` the outer build runs clippy as its rustc.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the plugins failed ({s}); is the target installed? run `rustup target add wasm32-wasip2`"
        ),
        Err(e) => panic!("cannot run {cargo} to build the plugins: {e}"),
    }
    let out = plugins.join("target/wasm32-wasip2/release");
    println!("cargo:rustc-env=WEFT_PLUGIN_DIR={}", out.display());
    println!("cargo:rustc-env=WEFT_ROOT={}", root.display());
}

/// Rebuild when a plugin's sources, the plugins workspace or the WIT change
/// (but not when plugins/target does).
fn watch(plugins: &Path, wit: &Path) {
    println!("cargo:rerun-if-changed={}", wit.display());
    for f in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(f).display());
    }
    if let Ok(entries) = std::fs::read_dir(plugins) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != "target") {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}
