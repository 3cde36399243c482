//! The wasmtime host: one engine, a registry of node types (each a compiled component with its
//! `InstancePre`), and [`NodeRunner`] for the executor — a fresh sandboxed instance per call of a
//! custom node (a built-in may reuse a warm one, see [`WARM_PER_TYPE`]), under a memory limit and
//! an epoch deadline. The only module that touches wasmtime.

mod bindings;
mod cache;
mod connect;
mod grants;
mod lent;
mod sandbox;

pub use grants::{Grant, Grants, HostPattern, HostPatternError};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Trap};

use bindings::{ContextReader, ContextReaderPre};
use hookflow_workflow::{
    Directive, EndStatus, NodeCall, NodeFailure, NodeInfo, NodeOutcome, NodeRunner, Reply, Secrets, is_header_name,
    is_header_value,
};
use sandbox::{MemoryLimitExceeded, Sandbox, SandboxSpec};

/// The built-in node components, compiled by `build.rs`: `(type name, component bytes)`.
pub const BUILTIN_NODES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/builtin_nodes.rs"));

/// The interface whose import makes a component a `context-reader` (any version).
const CONTEXT_INTERFACE: &str = "hookflow:node/context";

/// How much of each linear memory and table a freed pool slot keeps resident.
const KEEP_RESIDENT: usize = 2 << 20;

/// How many idle instances of each built-in node type are kept warm for reuse. Built-ins are our
/// own stateless nodes in safe Rust: a warm instance's heap outlives a call, but no built-in reads
/// memory it did not write in the same call. Custom nodes always get a fresh instance (SECURITY.md).
const WARM_PER_TYPE: usize = 4;

/// Built-ins whose calls take microseconds whatever their input (no loops over data, no network):
/// a sync workflow made only of these runs on the request's own thread.
const QUICK_NODES: &[&str] = &["condition", "response", "set", "end"];

/// Calls after which a warm instance is dropped anyway, bounding what a guest heap can accumulate.
const WARM_MAX_CALLS: u32 = 10_000;

/// A warm instance whose linear memory grew past this is dropped after its call.
const WARM_MAX_MEMORY: usize = 4 << 20;

/// Instance slots kept for calls made on async runtime threads ([`Placement::RuntimeThread`]):
/// such a call must never wait for a slot, since the calls holding them may need those very
/// threads. Per available core (tokio runs one runtime thread per core), with a margin.
const RUNTIME_THREAD_SLOTS_PER_CORE: usize = 2;

/// Where node calls are made from, which decides the instance slots they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A thread that may block (tokio's blocking pool, a plain thread): a call waits for a free
    /// slot, at most until its deadline.
    BlockingThread,
    /// An async runtime thread (quick built-ins of a short plan): a call takes a slot kept
    /// for such threads and never waits for one while those last.
    RuntimeThread,
}

/// The host as the executor's [`NodeRunner`], for calls made from one [`Placement`].
#[derive(Clone, Copy)]
pub struct Runner<'a> {
    host: &'a PluginHost,
    placement: Placement,
}

impl NodeRunner for Runner<'_> {
    fn describe(&self, node_type: &str) -> Option<Arc<NodeInfo>> {
        self.host.describe(node_type)
    }

    fn run(&self, node_type: &str, call: &NodeCall<'_>) -> Result<NodeOutcome, NodeFailure> {
        let plugin = self
            .host
            .plugin(node_type)
            .ok_or_else(|| NodeFailure::Error(format!("node type {node_type:?} is not installed")))?;
        self.host.call(&plugin, call, self.placement)
    }
}

/// One node instance's wasmtime store: its memory, its sandbox and its deadline (not hookflow's
/// storage, which this crate never sees).
type InstanceStore = wasmtime::Store<Sandbox>;

/// How often the epoch advances; the granularity of node time budgets.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits and places for the plugin host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// How long one node call may run (default 1 s).
    pub time_budget: Duration,
    /// How much linear memory one node instance may use (default 64 MiB).
    pub memory_limit: usize,
    /// How many node instances may exist at once (default 128); further calls wait.
    pub max_instances: u32,
    /// Where compiled components are cached (`None`: compile on every load).
    pub cache_dir: Option<PathBuf>,
    /// What node types get beyond the bare sandbox.
    pub grants: Grants,
    /// Masked out of nodes' log lines.
    pub secrets: Arc<Secrets>,
    /// Told how long each node call took (the server's `/metrics`); `None`: nobody listens.
    pub observer: Option<Arc<dyn CallObserver>>,
}

/// Hears of every node call the host makes.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// One call of a `node_type` node took `elapsed` (fresh or warm instance, and the run).
    fn node_call(&self, node_type: &str, elapsed: Duration);
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            time_budget: Duration::from_secs(1),
            memory_limit: 64 << 20,
            max_instances: 128,
            cache_dir: None,
            grants: Grants::default(),
            secrets: Arc::default(),
            observer: None,
        }
    }
}

/// Why a component could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The wasmtime engine could not be configured.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The bytes are not a valid component.
    #[error("plugin {name:?} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// The node type name.
        name: String,
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The component does not fit the `node` world.
    #[error("plugin {name:?} does not target the hookflow:node/node@0.1.0 world: {reason}")]
    WrongWorld {
        /// The node type name.
        name: String,
        /// What it lacks.
        reason: String,
    },
    /// `describe` failed or answered nonsense.
    #[error("plugin {name:?} failed to describe itself: {reason}")]
    Describe {
        /// The node type name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The name is not usable as a node type.
    #[error("{0:?} is not a valid node type name: use 1 to 64 of a-z 0-9 _ -, starting with a letter")]
    InvalidName(String),
    /// A custom plugin tried to take a built-in's name.
    #[error("plugin {0:?} has the name of a built-in node")]
    BuiltinName(String),
    /// A plugin file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An installed node type.
pub struct Plugin {
    /// The node type name workflows use.
    pub name: String,
    /// What the component declares.
    pub info: Arc<NodeInfo>,
    /// SHA-256 of the component bytes, hex.
    pub digest: String,
    /// Whether it is embedded in the binary.
    pub builtin: bool,
    /// Whether it imports the `context` interface (world `context-reader`): its calls get an
    /// empty `invocation.context` and read paths through the import.
    pub reads_context: bool,
    pre: ContextReaderPre<Sandbox>,
    /// Idle instances ready for the next call (built-ins without a grant only).
    warm: Mutex<Vec<WarmNode>>,
}

/// An instantiated node in its store, kept between calls of a built-in.
struct WarmNode {
    store: InstanceStore,
    node: ContextReader,
    calls: u32,
}

/// The plugin host: engine, linker and registry.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<Sandbox>,
    config: HostConfig,
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    slots: Slots,
}

impl PluginHost {
    /// Creates the engine (pooling allocator, epoch interruption and its ticker thread) and
    /// installs the built-in nodes.
    pub fn new(config: HostConfig) -> Result<PluginHost, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        // Calls in flight are bounded by `max_instances` (plus the runtime threads' own); idle
        // warm instances take slots beyond.
        let runtime_thread_slots = runtime_thread_slots();
        let instances =
            config.max_instances.max(1) + (runtime_thread_slots + BUILTIN_NODES.len() * WARM_PER_TYPE) as u32;
        let mut pool = PoolingAllocationConfig::new();
        // A Rust wasip2 component holds a main module plus adapter shims: several core
        // instances and tables, and up to two memories, per component instance.
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .max_memory_size(config.memory_limit)
            // A freed slot keeps its touched pages and has them reset in place (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it, Linux ≥ 6.7), instead of giving them
            // back and faulting them in again on the next call.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm_config).map_err(engine_error)?;
        spawn_epoch_ticker(&engine).map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        // Every node may import wasi:http; requests pass only to the hosts its type is granted.
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(engine_error)?;
        ContextReader::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |sandbox| sandbox)
            .map_err(engine_error)?;

        let host = PluginHost {
            engine,
            linker,
            plugins: RwLock::new(HashMap::new()),
            slots: Slots::new(config.max_instances.max(1) as usize, runtime_thread_slots),
            config,
        };
        for (name, wasm) in BUILTIN_NODES {
            let plugin = host.prepare(name, wasm, true)?;
            host.insert(plugin);
        }
        Ok(host)
    }

    /// Compiles and installs a custom node type, replacing an earlier one of the same name.
    pub fn install(&self, name: &str, wasm: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        if !is_valid_type_name(name) {
            return Err(LoadError::InvalidName(name.to_string()));
        }
        if BUILTIN_NODES.iter().any(|(builtin, _)| *builtin == name) {
            return Err(LoadError::BuiltinName(name.to_string()));
        }
        let plugin = self.prepare(name, wasm, false)?;
        Ok(self.insert(plugin))
    }

    /// Installs every `<type>.wasm` in `dir`. A faulty file does not stop the others: the result
    /// lists what was installed and what was refused.
    pub fn install_dir(&self, dir: &Path) -> Result<(Vec<Arc<Plugin>>, Vec<LoadError>), LoadError> {
        let io_error = |source| LoadError::Io { path: dir.to_path_buf(), source };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_error)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        paths.sort();
        let (mut installed, mut refused) = (Vec::new(), Vec::new());
        for path in paths {
            let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
            let result = std::fs::read(&path)
                .map_err(|source| LoadError::Io { path: path.clone(), source })
                .and_then(|wasm| self.install(&name, &wasm));
            match result {
                Ok(plugin) => installed.push(plugin),
                Err(error) => refused.push(error),
            }
        }
        Ok((installed, refused))
    }

    /// Removes a custom node type; built-ins stay. Returns what was removed.
    pub fn uninstall(&self, name: &str) -> Option<Arc<Plugin>> {
        let mut plugins = self.plugins.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if plugins.get(name).is_some_and(|plugin| plugin.builtin) {
            return None;
        }
        plugins.remove(name)
    }

    /// The installed node types, sorted by name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        let mut plugins: Vec<_> = self.registry().values().cloned().collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        plugins
    }

    /// One installed node type.
    pub fn plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        self.registry().get(name).cloned()
    }

    /// Node calls running now (each holds an instance slot).
    pub fn calls_in_flight(&self) -> usize {
        self.slots.taken()
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Plugin>>> {
        // A panic while holding the lock cannot leave the map half-updated (inserts are single
        // calls), so a poisoned lock is still consistent.
        self.plugins.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, plugin: Plugin) -> Arc<Plugin> {
        let plugin = Arc::new(plugin);
        let mut plugins = self.plugins.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        plugins.insert(plugin.name.clone(), plugin.clone());
        plugin
    }

    /// Compiles (or loads from the cache), links against the `node` world and describes.
    fn prepare(&self, name: &str, wasm: &[u8], builtin: bool) -> Result<Plugin, LoadError> {
        let digest = hex(&Sha256::digest(wasm));
        let component = cache::load(&self.engine, wasm, &digest, self.config.cache_dir.as_deref())
            .map_err(|e| LoadError::Compile { name: name.to_string(), reason: format!("{e:#}") })?;
        let wrong_world =
            |e: wasmtime::Error| LoadError::WrongWorld { name: name.to_string(), reason: format!("{e:#}") };
        let reads_context = component
            .component_type()
            .imports(&self.engine)
            .any(|(import, _)| import.split('@').next() == Some(CONTEXT_INTERFACE));
        let instance_pre = self.linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = ContextReaderPre::new(instance_pre).map_err(wrong_world)?;

        let describe_error = |reason: String| LoadError::Describe { name: name.to_string(), reason };
        let _slot = self.slots.acquire(None);
        let mut store = self.instance_store("", "", name);
        let node = pre.instantiate(&mut store).map_err(|e| describe_error(trap_message(&e)))?;
        let info = node.call_describe(&mut store).map_err(|e| describe_error(trap_message(&e)))?;
        let config_schema = serde_json::from_str(&info.config_schema)
            .map_err(|e| describe_error(format!("config-schema is not JSON: {e}")))?;
        let info = NodeInfo {
            name: info.name,
            version: info.version,
            config_schema,
            branches: info.branches,
            may_respond: info.may_respond,
        };
        Ok(Plugin {
            name: name.to_string(),
            info: Arc::new(info),
            digest,
            builtin,
            reads_context,
            pre,
            warm: Mutex::new(Vec::new()),
        })
    }

    /// A store for one call of a `node_type` node, under its grant and time budget.
    fn instance_store(&self, execution_id: &str, node_key: &str, node_type: &str) -> InstanceStore {
        let grant = self.config.grants.get(node_type);
        let budget = self.time_budget(node_type);
        let sandbox = Sandbox::new(&SandboxSpec {
            memory_limit: self.config.memory_limit,
            grant,
            time_budget: budget,
            execution_id,
            node_key,
            node_type,
            secrets: &self.config.secrets,
        });
        let mut store = InstanceStore::new(&self.engine, sandbox);
        store.limiter(|sandbox| sandbox);
        self.arm_deadline(&mut store, node_type);
        store.epoch_deadline_trap();
        store
    }

    /// Sets the store's epoch deadline to the node type's time budget from now.
    fn arm_deadline(&self, store: &mut InstanceStore, node_type: &str) {
        let ticks = self.time_budget(node_type).as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1));
    }

    /// Whether a call of this node type is quick enough to run on an async runtime thread: a
    /// [`QUICK_NODES`] built-in with a warm instance.
    pub fn is_quick(&self, node_type: &str) -> bool {
        QUICK_NODES.contains(&node_type) && self.config.grants.get(node_type).is_none()
    }

    /// Whether calls of this node type may reuse a warm instance: built-ins that the operator
    /// granted nothing (a grant's environment and outbound budget are fixed per store).
    fn reuses_instances(&self, plugin: &Plugin) -> bool {
        plugin.builtin && self.config.grants.get(&plugin.name).is_none()
    }

    /// The operator's secrets (what `$secrets` resolves to and what is masked).
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.config.secrets
    }

    /// How long one call of a `node_type` node may run.
    fn time_budget(&self, node_type: &str) -> Duration {
        self.config.grants.get(node_type).and_then(|grant| grant.time_budget).unwrap_or(self.config.time_budget)
    }

    /// The host as a [`NodeRunner`] for calls made from `placement`.
    pub fn runner(&self, placement: Placement) -> Runner<'_> {
        Runner { host: self, placement }
    }

    fn call(&self, plugin: &Plugin, call: &NodeCall<'_>, placement: Placement) -> Result<NodeOutcome, NodeFailure> {
        let started = Instant::now();
        let outcome = self.call_in_sandbox(plugin, call, placement);
        if let Some(observer) = &self.config.observer {
            observer.node_call(&plugin.name, started.elapsed());
        }
        outcome
    }

    fn call_in_sandbox(
        &self,
        plugin: &Plugin,
        call: &NodeCall<'_>,
        placement: Placement,
    ) -> Result<NodeOutcome, NodeFailure> {
        let slot = match placement {
            Placement::RuntimeThread => self.slots.acquire_for_runtime_thread(call.deadline),
            Placement::BlockingThread => self.slots.acquire(call.deadline),
        };
        let Some(_slot) = slot else {
            return Err(NodeFailure::Timeout(format!(
                "no node instance became free before the execution's deadline (all {} are busy)",
                self.config.max_instances
            )));
        };
        let warm =
            if self.reuses_instances(plugin) { plugin.warm.lock().ok().and_then(|mut idle| idle.pop()) } else { None };
        let failure = |error: wasmtime::Error| match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => NodeFailure::Timeout(format!(
                "node ran past its time budget of {}",
                humantime::format_duration(self.time_budget(&plugin.name))
            )),
            _ => NodeFailure::Error(trap_message(&error)),
        };
        let mut instance = match warm {
            Some(mut instance) => {
                instance.store.data_mut().begin_call(call.execution_id, call.node_key);
                self.arm_deadline(&mut instance.store, &plugin.name);
                instance
            }
            None => {
                let mut store = self.instance_store(call.execution_id, call.node_key, &plugin.name);
                let node = plugin.pre.instantiate(&mut store).map_err(failure)?;
                WarmNode { store, node, calls: 0 }
            }
        };
        let invocation = bindings::Invocation {
            node_key: call.node_key.to_string(),
            config: call.config.to_string(),
            context: if plugin.reads_context { String::new() } else { call.context.text() },
        };
        // A trap drops the instance with this frame; only one that returned may be reused.
        let node = &instance.node;
        let answer = lent::with_context(&mut instance.store, call.context, |store| node.call_run(store, &invocation))
            .map_err(failure)?;
        instance.calls += 1;
        if self.reuses_instances(plugin)
            && instance.calls < WARM_MAX_CALLS
            && instance.store.data().peak_memory() <= WARM_MAX_MEMORY
        {
            let mut idle = plugin.warm.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < WARM_PER_TYPE {
                idle.push(instance);
            }
        }
        let outcome = answer.map_err(|error| NodeFailure::Error(error.message))?;
        convert_outcome(outcome).map_err(NodeFailure::Error)
    }
}

/// Calls from a thread that may block ([`Placement::BlockingThread`]).
impl NodeRunner for PluginHost {
    fn describe(&self, node_type: &str) -> Option<Arc<NodeInfo>> {
        self.plugin(node_type).map(|plugin| plugin.info.clone())
    }

    fn run(&self, node_type: &str, call: &NodeCall<'_>) -> Result<NodeOutcome, NodeFailure> {
        self.runner(Placement::BlockingThread).run(node_type, call)
    }
}

/// Whether a name may be a node type: 1–64 of `[a-z0-9_-]`, starting with a letter.
pub fn is_valid_type_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks what a component returned and turns it into the executor's types.
fn convert_outcome(outcome: bindings::Outcome) -> Result<NodeOutcome, String> {
    let output = serde_json::from_str(&outcome.output).map_err(|e| format!("node output is not JSON: {e}"))?;
    let directive = match outcome.directive {
        bindings::Directive::Continue => Directive::Continue,
        bindings::Directive::Branch(name) => Directive::Branch(name),
        bindings::Directive::Respond(reply) => Directive::Respond { reply: convert_reply(reply)?, keep_running: false },
        bindings::Directive::RespondAndContinue(reply) => {
            Directive::Respond { reply: convert_reply(reply)?, keep_running: true }
        }
        bindings::Directive::End(bindings::EndStatus::Resolved) => Directive::End(EndStatus::Resolved),
        bindings::Directive::End(bindings::EndStatus::Failed) => Directive::End(EndStatus::Failed),
    };
    Ok(NodeOutcome { output, directive })
}

fn convert_reply(reply: bindings::Reply) -> Result<Reply, String> {
    if !(100..=599).contains(&reply.status) {
        return Err(format!("node replied with status {}, outside 100–599", reply.status));
    }
    let headers = reply
        .headers
        .into_iter()
        .map(|header| {
            if !is_header_name(&header.name) {
                return Err(format!("node replied with an invalid header name {:?}", header.name));
            }
            if !is_header_value(&header.value) {
                return Err(format!("node replied with an invalid value for header {:?}", header.name));
            }
            Ok((header.name, header.value))
        })
        .collect::<Result<_, _>>()?;
    Ok(Reply { status: reply.status, headers, body: reply.body })
}

/// A trap or host error in one line: what trapped and why, without the wasm backtrace.
fn trap_message(error: &wasmtime::Error) -> String {
    if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
        return exceeded.to_string();
    }
    let root = error.root_cause().to_string();
    match error.downcast_ref::<Trap>() {
        Some(trap) if root != trap.to_string() => format!("node trapped: {trap} ({root})"),
        Some(trap) => format!("node trapped: {trap}"),
        None => root,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new().name("hookflow-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    })?;
    Ok(())
}

/// Slots kept for runtime threads' calls: [`RUNTIME_THREAD_SLOTS_PER_CORE`] per available core.
fn runtime_thread_slots() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * RUNTIME_THREAD_SLOTS_PER_CORE
}

/// A counting semaphore over the pool's instance slots: calls beyond it wait instead of failing.
/// Runtime threads' calls have a share of their own, so they never wait behind blocking threads.
struct Slots {
    free: Mutex<SlotCounts>,
    freed: Condvar,
    /// Slots of both kinds when none is taken.
    total: usize,
}

struct SlotCounts {
    /// Free slots of the shared kind.
    shared: usize,
    /// Free slots kept for runtime threads.
    runtime_threads: usize,
}

/// A taken slot; given back to its kind when dropped.
struct Slot<'a> {
    slots: &'a Slots,
    runtime_thread: bool,
}

impl Slots {
    fn new(shared: usize, runtime_threads: usize) -> Slots {
        let total = shared + runtime_threads;
        Slots { free: Mutex::new(SlotCounts { shared, runtime_threads }), freed: Condvar::new(), total }
    }

    /// Slots taken now, of both kinds.
    fn taken(&self) -> usize {
        let free = self.counts();
        self.total - free.shared - free.runtime_threads
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, SlotCounts> {
        self.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A shared slot, waiting for one at most until `deadline`.
    fn acquire(&self, deadline: Option<Instant>) -> Option<Slot<'_>> {
        let mut free = self.counts();
        while free.shared == 0 {
            free = match deadline {
                None => self.freed.wait(free).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())?;
                    self.freed.wait_timeout(free, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0
                }
            };
        }
        free.shared -= 1;
        Some(Slot { slots: self, runtime_thread: false })
    }

    /// A runtime thread's own slot, or a shared one if all of those are taken (more runtime
    /// threads than expected), waiting only then.
    fn acquire_for_runtime_thread(&self, deadline: Option<Instant>) -> Option<Slot<'_>> {
        let mut free = self.counts();
        if free.runtime_threads == 0 {
            drop(free);
            return self.acquire(deadline);
        }
        free.runtime_threads -= 1;
        Some(Slot { slots: self, runtime_thread: true })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.counts();
        if self.runtime_thread {
            free.runtime_threads += 1;
        } else {
            free.shared += 1;
            self.slots.freed.notify_one();
        }
    }
}
