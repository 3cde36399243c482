//! Builds the test components of `fixtures/` for wasm32-wasip2 and lists them for embedding.

use std::path::PathBuf;

fn main() {
    // Read at run time: a build-script binary may be reused for a checkout at another path.
    let tests = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let tests = tests.as_path();
    let root = tests.parent().expect("tests/ has a parent");
    hookflow_guest_build::build(&hookflow_guest_build::Guests {
        workspace: &tests.join("fixtures"),
        watch: &[&root.join("wit"), &root.join("plugins/hookflow-node")],
        name_prefix: "fixture_",
        out_file: "fixtures.rs",
    });
}
