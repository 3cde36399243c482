//! Host bindings of the `node` world (`wit/node.wit`), generated once for the whole engine.

wasmtime::component::bindgen!({ world: "node", path: "../../wit" });
