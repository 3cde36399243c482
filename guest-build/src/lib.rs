//! Build-script helper: builds a cargo workspace of component crates for `wasm32-wasip2` and
//! writes a Rust file listing them as `(name, include_bytes!(...))` pairs, so the crate whose
//! build script calls it embeds them.
//!
//! Used by `crates/plugin/build.rs` (the built-in nodes of `plugins/`) and `tests/build.rs` (the
//! misbehaving test components of `tests/fixtures/`).

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// What to build and where to put the list.
#[derive(Debug, Clone)]
pub struct Guests<'a> {
    /// The guest workspace (holds `Cargo.toml`).
    pub workspace: &'a Path,
    /// Extra paths whose changes rebuild the guests (e.g. the WIT directory).
    pub watch: &'a [&'a Path],
    /// Stripped from each cdylib's crate name to make its component name
    /// (`hookflow_node_` turns `hookflow_node_condition` into `condition`).
    pub name_prefix: &'a str,
    /// File name, in `OUT_DIR`, of the generated list.
    pub out_file: &'a str,
}

/// Builds the guests and writes the list; panics with a message naming the fix when it cannot,
/// which is how a build script reports failure.
pub fn build(guests: &Guests<'_>) {
    println!("cargo::rerun-if-changed={}", guests.workspace.display());
    for path in guests.watch {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    check_target_installed();

    // Our own target directory beside the host's, shared by every profile, so guests build
    // once and incrementally; never the host's directory, whose lock cargo holds right now.
    let host_target = out_dir.ancestors().nth(4).unwrap_or(&out_dir);
    let name = guests.workspace.file_name().map_or_else(|| "guests".into(), |n| n.to_string_lossy().into_owned());
    let target_dir = host_target.join("wasm-guests").join(name);

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(guests.workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The host build's flags and wrappers are for the host target, not for guests.
    for variable in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
    ] {
        command.env_remove(variable);
    }
    let output = command.output().unwrap_or_else(|e| panic!("cannot run cargo to build the {TARGET} guests: {e}"));
    assert!(
        output.status.success(),
        "building the guests in {} for {TARGET} failed (the compiler's messages are above)",
        guests.workspace.display()
    );

    let mut components = artifacts(&String::from_utf8_lossy(&output.stdout), guests.name_prefix);
    components.sort();
    let mut list = String::from("&[\n");
    for (name, path) in &components {
        println!("cargo::rerun-if-changed={}", path.display());
        writeln!(list, "    ({name:?}, include_bytes!({:?}).as_slice()),", path.display().to_string())
            .expect("writing to a String cannot fail");
    }
    list.push(']');
    std::fs::write(out_dir.join(guests.out_file), list).expect("cannot write the component list to OUT_DIR");
}

/// `(component name, .wasm path)` of every cdylib in cargo's JSON messages.
fn artifacts(messages: &str, name_prefix: &str) -> Vec<(String, PathBuf)> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib")))
        .filter_map(|message| {
            let crate_name = message["target"]["name"].as_str()?.replace('-', "_");
            let name = crate_name.strip_prefix(name_prefix).unwrap_or(&crate_name).replace('_', "-");
            let wasm =
                message["filenames"].as_array()?.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm"))?;
            Some((name, PathBuf::from(wasm)))
        })
        .collect()
}

/// Fails the build with the fix when the standard library for the guest target is missing.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let installed = libdir.is_some_and(|dir| dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()));
    assert!(
        installed,
        "the {TARGET} target is not installed for this toolchain: run `rustup target add {TARGET}` and build again"
    );
}
