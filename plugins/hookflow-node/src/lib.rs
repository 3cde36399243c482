//! Write hookflow workflow nodes in Rust.
//!
//! A node is one function from a [`Call`] (its resolved config and the execution context) to an
//! [`Outcome`] (its output and what the engine does next), exported with [`export_node!`]:
//!
//! ```ignore
//! use hookflow_node::{Call, Error, Info, Outcome, export_node};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { threshold: f64 }
//!
//! fn score(call: Call) -> Result<Outcome, Error> {
//!     let config: Config = call.config()?;
//!     let total = call.get("$context.body.total").and_then(|v| v.as_f64()).unwrap_or(0.0);
//!     let branch = if total >= config.threshold { "high" } else { "low" };
//!     Ok(Outcome::branch(branch).with_output(&serde_json::json!({"total": total})))
//! }
//!
//! export_node!(Info::new("scorer").version(env!("CARGO_PKG_VERSION")).branches(&["high", "low"]), score);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to install.

mod call;
mod outcome;

pub use call::{Call, lookup};
pub use outcome::{EndStatus, Outcome, Reply};

extern crate self as hookflow_node;

/// The generated bindings of the `context-reader` world (`wit/node.wit`): the `node` world plus
/// the `context` import; [`export_node!`] uses them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "context-reader",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_node_world",
        default_bindings_module: "::hookflow_node::bindings",
        runtime_path: "::hookflow_node::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Why a run failed: the job and its execution end with status `error`, and the message is
/// what the operator reads in the execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Fails the run with this message: `return Err(fail("total must be positive"))`.
pub fn fail(message: impl Into<String>) -> Error {
    Error { message: message.into() }
}

/// What a node declares about itself (WIT `node-info`), built in a `const` context.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// The node type's name.
    pub name: &'static str,
    /// The node's version.
    pub version: &'static str,
    /// JSON Schema of the config, as JSON text.
    pub config_schema: &'static str,
    /// Branches the node may pick.
    pub branches: &'static [&'static str],
    /// Whether the node may answer the HTTP caller.
    pub may_respond: bool,
}

impl Info {
    /// A node called `name`: version `0.0.0`, any config, no branches, never answers the caller.
    pub const fn new(name: &'static str) -> Info {
        Info { name, version: "0.0.0", config_schema: "{}", branches: &[], may_respond: false }
    }

    /// Sets the version (usually `env!("CARGO_PKG_VERSION")`).
    pub const fn version(self, version: &'static str) -> Info {
        Info { version, ..self }
    }

    /// Sets the JSON Schema of the config.
    pub const fn config_schema(self, config_schema: &'static str) -> Info {
        Info { config_schema, ..self }
    }

    /// Declares the branches the node may pick.
    pub const fn branches(self, branches: &'static [&'static str]) -> Info {
        Info { branches, ..self }
    }

    /// Declares that the node may answer the HTTP caller (sync workflows only).
    pub const fn may_respond(self) -> Info {
        Info { may_respond: true, ..self }
    }
}

/// Writes a line to the engine's log, tagged with the execution and the node.
pub mod log {
    use crate::bindings::hookflow::node::host::{Level, log};

    /// At `debug`.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    /// At `info`.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// At `warn`.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// At `error`.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

#[doc(hidden)]
pub fn __describe(info: &Info) -> bindings::NodeInfo {
    bindings::NodeInfo {
        name: info.name.into(),
        version: info.version.into(),
        config_schema: info.config_schema.into(),
        branches: info.branches.iter().map(|branch| (*branch).into()).collect(),
        may_respond: info.may_respond,
    }
}

#[doc(hidden)]
pub fn __run(
    run: fn(Call) -> Result<Outcome, Error>,
    invocation: bindings::Invocation,
) -> Result<bindings::Outcome, bindings::NodeError> {
    // Keeps the `context` import in every SDK node, also in one that never reads its context: a
    // component that imports it is sent no context text, whose rendering and copy it would
    // otherwise pay on every call.
    std::hint::black_box(bindings::hookflow::node::context::get as fn(&str) -> Option<String>);
    let call = Call::parse(invocation).map_err(|error| bindings::NodeError { message: error.message })?;
    run(call).map(Outcome::into_wit).map_err(|error| bindings::NodeError { message: error.message })
}

/// Exports a node: its [`Info`] and the function that runs it.
///
/// ```ignore
/// hookflow_node::export_node!(hookflow_node::Info::new("echo"), echo);
/// fn echo(call: hookflow_node::Call) -> Result<hookflow_node::Outcome, hookflow_node::Error> {
///     Ok(hookflow_node::Outcome::next().with_output(call.config_value()))
/// }
/// ```
#[macro_export]
macro_rules! export_node {
    ($info:expr, $run:path) => {
        struct __HookflowNode;

        impl $crate::bindings::Guest for __HookflowNode {
            fn describe() -> $crate::bindings::NodeInfo {
                const INFO: $crate::Info = $info;
                $crate::__describe(&INFO)
            }

            fn run(
                invocation: $crate::bindings::Invocation,
            ) -> ::core::result::Result<$crate::bindings::Outcome, $crate::bindings::NodeError> {
                $crate::__run($run, invocation)
            }
        }

        $crate::bindings::__export_node_world!(__HookflowNode);
    };
}
