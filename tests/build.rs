//! Builds the test components of `fixtures/` for wasm32-wasip2 and lists them for embedding.

use std::path::Path;

fn main() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = tests.parent().expect("tests/ has a parent");
    hookflow_guest_build::build(&hookflow_guest_build::Guests {
        workspace: &tests.join("fixtures"),
        watch: &[&root.join("wit")],
        name_prefix: "fixture_",
        out_file: "fixtures.rs",
    });
}
