//! `hookflow plugin new`: writes a node project that builds and passes its own tests out of the
//! box, in Rust, Python or JavaScript. Every project carries the WIT contract (`wit/node.wit`,
//! embedded at build time); the Rust one also vendors the SDK (`plugins/hookflow-node`), so it
//! needs nothing but cargo.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hookflow_plugin::is_valid_type_name;

use crate::cli::Lang;

/// One file of a project: its path inside the project and its text.
type File = (&'static str, &'static str);

/// The Rust project, with `__NAME__` and `__CRATE__` to fill in.
const RUST: &[File] = &[
    ("Cargo.toml", include_str!("../scaffold/rust/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../scaffold/rust/lib.rs.tmpl")),
    ("README.md", include_str!("../scaffold/rust/README.md.tmpl")),
    (".gitignore", include_str!("../scaffold/rust/gitignore")),
    ("hookflow-node/Cargo.toml", include_str!("../scaffold/rust/sdk-Cargo.toml")),
    ("hookflow-node/src/lib.rs", include_str!("../../../plugins/hookflow-node/src/lib.rs")),
    ("hookflow-node/src/call.rs", include_str!("../../../plugins/hookflow-node/src/call.rs")),
    ("hookflow-node/src/outcome.rs", include_str!("../../../plugins/hookflow-node/src/outcome.rs")),
    ("hookflow-node/wit/node.wit", include_str!("../../../wit/node.wit")),
];

/// The JavaScript example's package name, in the lock file the JS project reuses.
const EXAMPLE_PACKAGE: &str = "hookflow-example-scorer";

/// Names a Rust project cannot have: the vendored SDK's, and the standard crates'.
const RESERVED_CRATE_NAMES: &[&str] = &["hookflow-node", "hookflow_node", "std", "core", "alloc", "test", "proc_macro"];

/// The Python project (`componentize-py`).
const PYTHON: &[File] = &[
    ("node.py", include_str!("../scaffold/python/node.py.tmpl")),
    ("app.py", include_str!("../scaffold/python/app.py.tmpl")),
    ("test_node.py", include_str!("../scaffold/python/test_node.py.tmpl")),
    ("README.md", include_str!("../scaffold/python/README.md.tmpl")),
    (".gitignore", include_str!("../scaffold/python/gitignore")),
    ("wit/node.wit", include_str!("../../../wit/node.wit")),
];

/// The JavaScript project (`componentize-js`).
const JS: &[File] = &[
    ("index.js", include_str!("../scaffold/js/index.js.tmpl")),
    ("test.js", include_str!("../scaffold/js/test.js.tmpl")),
    ("package.json", include_str!("../scaffold/js/package.json.tmpl")),
    // The example's lock file pins the same tool chain; its package name is replaced.
    ("package-lock.json", include_str!("../../../examples/nodes/js/scorer/package-lock.json")),
    ("README.md", include_str!("../scaffold/js/README.md.tmpl")),
    (".gitignore", include_str!("../scaffold/js/gitignore")),
    ("wit/node.wit", include_str!("../../../wit/node.wit")),
];

/// What to do next in a new project, one command per line.
pub fn next_steps(lang: Lang, name: &str) -> Vec<String> {
    match lang {
        Lang::Rust => vec![
            "cargo test && cargo build --release --target wasm32-wasip2".into(),
            format!("hookflow plugin check target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
        ],
        Lang::Python => vec![
            "python3 -m unittest".into(),
            format!("componentize-py -d wit -w context-reader componentize app -o {name}.wasm"),
            format!("hookflow plugin check {name}.wasm"),
        ],
        Lang::Js => vec!["npm ci && npm test && npm run build".into(), format!("hookflow plugin check {name}.wasm")],
    }
}

/// Writes a new node project called `name` into `dir` (default `./<name>`); returns where.
pub fn new_node(lang: Lang, name: &str, dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if !is_valid_type_name(name) {
        bail!("{name:?} is not a valid node type name: use 1 to 64 of a-z 0-9 _ -, starting with a letter");
    }
    if lang == Lang::Rust && RESERVED_CRATE_NAMES.contains(&name) {
        bail!(
            "{name:?} cannot name a Rust node project (it clashes with a crate the project uses); choose another name"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} exists already: choose another --dir or remove it", dir.display());
    }
    let crate_name = name.replace('-', "_");
    let files = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    for (path, template) in files {
        let text = template.replace("__NAME__", name).replace("__CRATE__", &crate_name).replace(EXAMPLE_PACKAGE, name);
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
