//! Host bindings of the `context-reader` world (`wit/node.wit`): the `node` world plus the
//! `context` import, generated once for the whole engine. A component of either world links.

wasmtime::component::bindgen!({ world: "context-reader", path: "../../wit" });
