//! Builds the built-in nodes of `plugins/` for wasm32-wasip2 and lists them for embedding.

use std::path::PathBuf;

fn main() {
    // Read at run time: a build-script binary may be reused for a checkout at another path.
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.ancestors().nth(2).expect("crates/plugin/ is two levels below the repository root");
    hookflow_guest_build::build(&hookflow_guest_build::Guests {
        workspace: &root.join("plugins"),
        watch: &[&root.join("wit")],
        name_prefix: "hookflow_node_",
        out_file: "builtin_nodes.rs",
    });
}
