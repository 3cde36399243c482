//! The per-call store state: a WASI context that grants only what the node type's [`Grant`]
//! says, resource limits, the `host` interface (logging tagged with the execution and node of
//! the call) and the `context` interface (paths of the call's context, lent by [`super::lent`]).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::hookflow::node::context;
use super::bindings::hookflow::node::host::{Host, Level};
use super::grants::{Grant, Outbound};
use super::lent::LentContext;
use hookflow_workflow::Secrets;

/// Longest log line kept from a node; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

/// What a store holds for one node call.
pub struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    table: ResourceTable,
    memory_limit: usize,
    /// The largest linear memory size asked for in this store.
    peak_memory: usize,
    execution_id: String,
    node_key: String,
    node_type: String,
    /// Masked out of every log line.
    secrets: Arc<Secrets>,
    /// What the `context` import reads during a call.
    context: LentContext,
}

/// What a sandbox is made from: the call's limits and tags.
pub struct SandboxSpec<'a> {
    /// Linear memory limit.
    pub memory_limit: usize,
    /// What the node type is granted.
    pub grant: Option<&'a Grant>,
    /// The call's time budget.
    pub time_budget: Duration,
    /// Log tags.
    pub execution_id: &'a str,
    /// Log tags.
    pub node_key: &'a str,
    /// Log tags.
    pub node_type: &'a str,
    /// Masked out of log lines.
    pub secrets: &'a Arc<Secrets>,
}

impl Sandbox {
    /// A sandbox with no filesystem, sockets, arguments or stdio, and only the environment
    /// variables and outbound HTTP hosts the grant lists; outbound requests end with the call's
    /// time budget.
    pub fn new(spec: &SandboxSpec<'_>) -> Sandbox {
        let SandboxSpec { memory_limit, grant, time_budget, execution_id, node_key, node_type, secrets } = *spec;
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        if let Some(grant) = grant {
            wasi.envs(&grant.env);
        }
        Sandbox {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(grant.map(|grant| grant.outbound.clone()).unwrap_or_default(), time_budget),
            table: ResourceTable::new(),
            memory_limit,
            peak_memory: 0,
            execution_id: execution_id.to_string(),
            node_key: node_key.to_string(),
            node_type: node_type.to_string(),
            secrets: secrets.clone(),
            context: LentContext::default(),
        }
    }
}

impl Sandbox {
    /// Tags the store's log lines with the next call of a reused instance.
    pub fn begin_call(&mut self, execution_id: &str, node_key: &str) {
        execution_id.clone_into(&mut self.execution_id);
        node_key.clone_into(&mut self.node_key);
    }

    /// The largest linear memory size any instance in this store asked for.
    pub fn peak_memory(&self) -> usize {
        self.peak_memory
    }

    /// Where [`super::lent::with_context`] lends a call's context.
    pub fn context_mut(&mut self) -> &mut LentContext {
        &mut self.context
    }
}

/// The trap raised when a node asks for more linear memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error("node exceeded its memory limit of {limit} bytes (it asked for {desired} bytes)")]
pub struct MemoryLimitExceeded {
    limit: usize,
    desired: usize,
}

/// Installed with `Store::limiter`: growth past the memory limit traps with
/// [`MemoryLimitExceeded`] instead of failing `memory.grow`, so the cause is reported precisely.
impl ResourceLimiter for Sandbox {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(MemoryLimitExceeded { limit: self.memory_limit, desired }.into());
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(maximum.is_none_or(|maximum| desired <= maximum))
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|maximum| desired <= maximum))
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

impl Host for Sandbox {
    fn log(&mut self, level: Level, mut message: String) {
        if let Some(masked) = self.secrets.mask_text(&message) {
            message = masked;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (execution, node, node_type) = (&self.execution_id, &self.node_key, &self.node_type);
        match level {
            Level::Trace => tracing::trace!(target: "hookflow::node", execution, node, node_type, "{message}"),
            Level::Debug => tracing::debug!(target: "hookflow::node", execution, node, node_type, "{message}"),
            Level::Info => tracing::info!(target: "hookflow::node", execution, node, node_type, "{message}"),
            Level::Warn => tracing::warn!(target: "hookflow::node", execution, node, node_type, "{message}"),
            Level::Error => tracing::error!(target: "hookflow::node", execution, node, node_type, "{message}"),
        }
    }
}

/// The `context` import: paths of the context lent for the call running now; nothing outside a
/// call.
impl context::Host for Sandbox {
    fn get(&mut self, path: String) -> Option<String> {
        self.context.get()?.get(&path)
    }

    fn all(&mut self) -> String {
        self.context.get().map(|context| context.text()).unwrap_or_default()
    }
}
