//! Builds the built-in nodes of `plugins/` for wasm32-wasip2 and lists them for embedding.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("engine/ has a parent");
    hookflow_guest_build::build(&hookflow_guest_build::Guests {
        workspace: &root.join("plugins"),
        watch: &[&root.join("wit")],
        name_prefix: "hookflow_node_",
        out_file: "builtin_nodes.rs",
    });
}
