//! `hookflow plugin new`: writes a node project that builds and passes its own tests out of the
//! box. The Rust project vendors the SDK (`plugins/hookflow-node`, embedded at build time) and
//! the WIT contract, so it needs nothing but cargo.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hookflow::plugin::is_valid_type_name;

/// One file of a project: its path inside the project and its text.
type File = (&'static str, &'static str);

/// The Rust project, with `__NAME__` and `__CRATE__` to fill in.
const RUST: &[File] = &[
    ("Cargo.toml", include_str!("../scaffold/rust/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../scaffold/rust/lib.rs.tmpl")),
    ("README.md", include_str!("../scaffold/rust/README.md.tmpl")),
    (".gitignore", include_str!("../scaffold/rust/gitignore")),
    ("hookflow-node/Cargo.toml", include_str!("../scaffold/rust/sdk-Cargo.toml")),
    ("hookflow-node/src/lib.rs", include_str!("../../plugins/hookflow-node/src/lib.rs")),
    ("hookflow-node/src/call.rs", include_str!("../../plugins/hookflow-node/src/call.rs")),
    ("hookflow-node/src/outcome.rs", include_str!("../../plugins/hookflow-node/src/outcome.rs")),
    ("hookflow-node/wit/node.wit", include_str!("../../wit/node.wit")),
];

/// Writes a new Rust node project called `name` into `dir` (default `./<name>`); returns where.
pub fn new_rust_node(name: &str, dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if !is_valid_type_name(name) {
        bail!("{name:?} is not a valid node type name: use 1 to 64 of a-z 0-9 _ -, starting with a letter");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} exists already: choose another --dir or remove it", dir.display());
    }
    let crate_name = name.replace('-', "_");
    for (path, template) in RUST {
        let text = template.replace("__NAME__", name).replace("__CRATE__", &crate_name);
        write(&dir.join(path), &text)?;
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
