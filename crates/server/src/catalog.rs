//! The deployed workflows: for each key, the current version compiled into a plan, ready for the
//! trigger's hot path; older versions compiled on demand for executions that started on them.
//!
//! A change is a compare-and-set on the stored record, so changes made at once — on this node or
//! on another node of a cluster — never both win; a node hears of the others' changes from the
//! store and takes them up ([`Catalog::sync`], [`Catalog::resync`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use hookflow_plugin::PluginHost;
use hookflow_store::{Applied, Store, StoreError, WorkflowRecord};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{
    ExecutionLimits, NodeKind, Plan, PlanNode, Reply, RetryPolicy, ValidationError, Workflow, compile, is_valid_key,
    parse_address_block, parse_workflow,
};

use crate::rate_limit::RateLimiter;

/// Length of a generated workflow key.
const GENERATED_KEY_LEN: usize = 16;

/// How many times a change is tried again when the workflow changed under it (on another node)
/// before the caller is told to try again.
const CHANGE_ATTEMPTS: usize = 5;

/// A workflow version ready to run.
#[derive(Debug)]
pub struct Deployed {
    /// The webhook key.
    pub key: String,
    /// The version the plan was compiled from.
    pub version: u64,
    /// The compiled definition.
    pub plan: Plan,
    /// The answer to an accepted async request (`trigger.response`, default `200 ok`).
    pub accept_reply: Reply,
    /// Whether its executions run on an async runtime thread instead of the blocking pool: a
    /// short plan of quick built-ins (see [`PluginHost::is_quick`]), and for a sync workflow no
    /// sync deadline (a sync one runs on the request's own thread).
    pub runs_inline: bool,
    /// Whether the plan holds a `delay` node (its async requests count against `--max-delayed`).
    pub has_delay: bool,
    /// `trigger.ipAllowlist`, parsed (validation refused entries that do not parse).
    pub allowlist: Vec<ipnet::IpNet>,
    /// `options.retry`, parsed.
    pub retry: Option<RetryPolicy>,
    /// `options.rateLimit`'s bucket (this version's: a new version starts full).
    pub rate_limit: Option<RateLimiter>,
}

/// The most nodes a plan run on an async runtime thread may have.
const MAX_INLINE_NODES: usize = 16;

impl Deployed {
    fn new(key: String, version: u64, mut plan: Plan, host: &PluginHost, limits: ExecutionLimits) -> Deployed {
        plan.limits = limits.for_workflow(&plan.workflow.options);
        plan.secrets = host.secrets().clone();
        let accept_reply = plan.workflow.trigger.response.clone().unwrap_or_default().reply();
        let quick = plan.count_nodes_if(&|node| host.is_quick(&node.node_type));
        let runs_inline = (!plan.workflow.sync || plan.workflow.trigger.sync_deadline_ms.is_none())
            && quick.is_some_and(|count| count <= MAX_INLINE_NODES);
        let has_delay = plan.count_nodes_if(&|node| node.kind != NodeKind::Delay).is_none();
        let allowlist =
            plan.workflow.trigger.ip_allowlist.iter().filter_map(|entry| parse_address_block(entry)).collect();
        let options = &plan.workflow.options;
        let retry = options.retry.as_ref().and_then(RetryPolicy::of);
        let rate_limit = options.rate_limit.as_ref().and_then(RateLimiter::new);
        Deployed { key, version, plan, accept_reply, runs_inline, has_delay, allowlist, retry, rate_limit }
    }

    /// The definition.
    pub fn workflow(&self) -> &Workflow {
        &self.plan.workflow
    }
}

/// Why a definition was not deployed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The definition is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A workflow with that key exists already.
    #[error("a workflow with the key {0:?} exists already")]
    Exists(String),
    /// No workflow has that key.
    #[error("no workflow has the key {0:?}")]
    Missing(String),
    /// The workflow changed since the version a replacement was made from.
    #[error("workflow {key:?} is at version {current}, not {expected}, since another change")]
    Stale {
        /// The workflow key.
        key: String,
        /// The version the replacement was made from.
        expected: u64,
        /// The stored version.
        current: u64,
    },
    /// A new version would turn a sync workflow async or the other way round.
    #[error("sync: whether workflow {0:?} is sync is fixed when it is created; create a new workflow instead")]
    SyncChanged(String),
    /// The workflow kept changing (on other nodes) while this change was made.
    #[error("workflow {0:?} kept changing while this change was made; try again")]
    Contended(String),
}

/// What `deploy` may do with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployMode {
    /// Create or update (start-up files).
    Upsert,
    /// Create only: an existing key is a conflict.
    Create,
    /// Replace only: the key must exist.
    Replace,
    /// Replace only the given version: a change made since is not overwritten.
    ReplaceVersion(u64),
}

/// Deployed workflows by key.
pub struct Catalog {
    store: Store,
    host: Arc<PluginHost>,
    /// The server's per-execution limits, which a workflow's options may override.
    limits: ExecutionLimits,
    current: RwLock<HashMap<String, Arc<Deployed>>>,
    /// Plans of versions that are no longer current, for executions still running on them.
    older: Mutex<HashMap<(String, u64), Arc<Deployed>>>,
    /// Held by each change (deploy, remove, sync) for its read-modify-write of the stored
    /// record, so two changes of this node never compute the same next version.
    changing: tokio::sync::Mutex<()>,
    /// Stored versions that did not compile here, logged once each.
    refused: Mutex<HashSet<(String, u64)>>,
}

impl Catalog {
    /// Deploys every stored workflow. One that no longer compiles (a node type was removed) is
    /// reported and left out.
    pub async fn load(store: Store, host: Arc<PluginHost>, limits: ExecutionLimits) -> Result<Catalog, StoreError> {
        let catalog = Catalog {
            store,
            host,
            limits,
            current: RwLock::default(),
            older: Mutex::default(),
            changing: tokio::sync::Mutex::default(),
            refused: Mutex::default(),
        };
        for record in catalog.store.workflows().await? {
            let key = record.definition.key.clone().unwrap_or_default();
            match compile(&record.definition, catalog.host.as_ref()) {
                Ok(plan) => {
                    catalog.publish(Deployed::new(key, record.version, plan, &catalog.host, catalog.limits));
                }
                Err(error) => tracing::error!(workflow = %key, "stored workflow left out: {error}"),
            }
        }
        Ok(catalog)
    }

    /// The current version of a workflow.
    pub fn get(&self, key: &str) -> Option<Arc<Deployed>> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key).cloned()
    }

    /// Every deployed workflow, by key.
    pub fn all(&self) -> Vec<Arc<Deployed>> {
        let current = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<_> = current.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// A given version of a workflow: the current one, or an older one from the store.
    pub async fn version(&self, key: &str, version: u64) -> Result<Option<Arc<Deployed>>, DeployError> {
        if let Some(current) = self.get(key).filter(|current| current.version == version) {
            return Ok(Some(current));
        }
        let cache_key = (key.to_string(), version);
        if let Some(older) = self.older.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&cache_key) {
            return Ok(Some(older.clone()));
        }
        let Some(definition) = self.store.workflow_version(key, version).await? else {
            return Ok(None);
        };
        let plan = compile(&definition, self.host.as_ref())?;
        let deployed = Arc::new(Deployed::new(key.to_string(), version, plan, &self.host, self.limits));
        self.older.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(cache_key, deployed.clone());
        Ok(Some(deployed))
    }

    /// Parses a definition read from `source` (a `--workflows` file, a `--demo` workflow) and
    /// deploys it, creating or replacing its workflow.
    pub async fn deploy_source(&self, source: &str, json: &str) -> Result<Arc<Deployed>, DeployError> {
        let definition = parse_workflow(json)?;
        self.deploy(definition, Some(source), DeployMode::Upsert).await
    }

    /// Validates and stores a definition, and makes it current. A definition without a key gets
    /// a generated one — or, when it comes from a file (`source`), the key that file was given
    /// before. An unchanged definition keeps its version.
    pub async fn deploy(
        &self,
        definition: Workflow,
        source: Option<&str>,
        mode: DeployMode,
    ) -> Result<Arc<Deployed>, DeployError> {
        let _changing = self.changing.lock().await;
        self.deploy_held(definition, source, mode).await
    }

    /// Enables or disables a workflow (a new version); the change is atomic with respect to
    /// other changes of the workflow.
    pub async fn set_enabled(&self, key: &str, enabled: bool) -> Result<Arc<Deployed>, DeployError> {
        let _changing = self.changing.lock().await;
        let current = self.get(key).ok_or_else(|| DeployError::Missing(key.to_string()))?;
        let mut definition = current.workflow().clone();
        definition.enabled = enabled;
        self.deploy_held(definition, None, DeployMode::Replace).await
    }

    /// [`Catalog::deploy`], with `changing` held by the caller.
    async fn deploy_held(
        &self,
        mut definition: Workflow,
        source: Option<&str>,
        mode: DeployMode,
    ) -> Result<Arc<Deployed>, DeployError> {
        let previous_from_source = match source {
            Some(source) => self
                .store
                .workflows()
                .await
                .ok()
                .and_then(|records| records.into_iter().find(|record| record.source.as_deref() == Some(source))),
            None => None,
        };
        if definition.key.is_none() {
            let key = previous_from_source.as_ref().and_then(|record| record.definition.key.clone());
            definition.key = Some(key.unwrap_or_else(generate_key));
        }
        let plan = compile(&definition, self.host.as_ref())?;
        let key = definition.key.clone().unwrap_or_default();
        debug_assert!(is_valid_key(&key));
        for _ in 0..CHANGE_ATTEMPTS {
            let stored = self.store.workflow(&key).await?;
            match (mode, &stored) {
                (DeployMode::Create, Some(_)) => return Err(DeployError::Exists(key)),
                (DeployMode::Replace | DeployMode::ReplaceVersion(_), None) => return Err(DeployError::Missing(key)),
                (DeployMode::ReplaceVersion(expected), Some(stored)) if stored.version != expected => {
                    return Err(DeployError::Stale { key, expected, current: stored.version });
                }
                (_, Some(stored)) if stored.definition.sync != definition.sync => {
                    return Err(DeployError::SyncChanged(key));
                }
                _ => {}
            }
            let now = Timestamp::now();
            let expected = stored.as_ref().map(|stored| stored.version);
            let record = match stored {
                // An unchanged definition keeps its version (several nodes deploying the same
                // file make one version).
                Some(stored) if stored.definition == definition => {
                    return Ok(self.publish(Deployed::new(key, stored.version, plan, &self.host, self.limits)));
                }
                Some(stored) => WorkflowRecord {
                    definition: definition.clone(),
                    version: stored.version + 1,
                    created_at: stored.created_at,
                    updated_at: now,
                    source: source.map(str::to_string),
                },
                // A key used before (and deleted) goes on from its last version, so a version
                // number always names one definition.
                None => WorkflowRecord {
                    version: self.store.workflow_versions(&key).await?.last().map_or(1, |(last, _)| last + 1),
                    definition: definition.clone(),
                    created_at: now,
                    updated_at: now,
                    source: source.map(str::to_string),
                },
            };
            if self.store.put_workflow(&record, expected).await? == Applied::Conflict {
                // Changed meanwhile (on another node): look again.
                continue;
            }
            let deployed = Deployed::new(key, record.version, plan, &self.host, self.limits);
            return Ok(self.publish(deployed));
        }
        Err(DeployError::Contended(key))
    }

    /// Makes a workflow here what the store holds (another node changed it): its current version
    /// compiled and published, or removed when it is gone.
    pub async fn sync(&self, key: &str) -> Result<(), StoreError> {
        let _changing = self.changing.lock().await;
        match self.store.workflow(key).await? {
            Some(record) => self.take_up(record),
            None => {
                self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
            }
        }
        Ok(())
    }

    /// Makes every workflow here what the store holds (after events may have been missed).
    pub async fn resync(&self) -> Result<(), StoreError> {
        // Read under the lock: a change of this node's made meanwhile is in what is read.
        let _changing = self.changing.lock().await;
        let records = self.store.workflows().await?;
        let stored: HashSet<String> = records.iter().filter_map(|record| record.definition.key.clone()).collect();
        for record in records {
            self.take_up(record);
        }
        self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|key, _| stored.contains(key));
        Ok(())
    }

    /// Publishes a stored record unless its version is current here already; one that does not
    /// compile here (a node type not installed yet) is left out and logged once per version.
    fn take_up(&self, record: WorkflowRecord) {
        let key = record.definition.key.clone().unwrap_or_default();
        if self.get(&key).is_some_and(|current| current.version == record.version) {
            return;
        }
        match compile(&record.definition, self.host.as_ref()) {
            Ok(plan) => {
                self.publish(Deployed::new(key, record.version, plan, &self.host, self.limits));
            }
            Err(error) => {
                let mut refused = self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if refused.insert((key.clone(), record.version)) {
                    tracing::error!(workflow = %key, version = record.version, "stored workflow left out: {error}");
                }
            }
        }
    }

    /// `options.maxConcurrency` of every current workflow that sets it (what claims keep).
    pub fn concurrency_limits(&self) -> HashMap<String, u32> {
        let current = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        current
            .values()
            .filter_map(|deployed| {
                let limit = deployed.workflow().options.max_concurrency?;
                Some((deployed.key.clone(), u32::try_from(limit).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    /// Every stored version of a workflow, oldest first.
    pub async fn versions(&self, key: &str) -> Result<Vec<(u64, Workflow)>, StoreError> {
        self.store.workflow_versions(key).await
    }

    /// Keys of the enabled workflows whose current version uses a node type.
    pub fn users_of(&self, node_type: &str) -> Vec<String> {
        fn uses(nodes: &[PlanNode], node_type: &str) -> bool {
            nodes.iter().any(|node| node.node_type == node_type || node.branches.values().any(|b| uses(b, node_type)))
        }
        self.all()
            .into_iter()
            .filter(|deployed| deployed.workflow().enabled && uses(&deployed.plan.nodes, node_type))
            .map(|deployed| deployed.key.clone())
            .collect()
    }

    /// The stored record of a workflow (timestamps, source).
    pub async fn record(&self, key: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        self.store.workflow(key).await
    }

    /// Removes a workflow: its URL answers 404 from now on.
    pub async fn remove(&self, key: &str) -> Result<(), DeployError> {
        let _changing = self.changing.lock().await;
        if self.get(key).is_none() {
            return Err(DeployError::Missing(key.to_string()));
        }
        self.store.delete_workflow(key).await?;
        self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
        Ok(())
    }

    fn publish(&self, deployed: Deployed) -> Arc<Deployed> {
        let deployed = Arc::new(deployed);
        let mut current = self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        current.insert(deployed.key.clone(), deployed.clone());
        deployed
    }
}

/// A fresh unguessable workflow key: `[0-9a-z]`, from the operating system's CSPRNG.
pub fn generate_key() -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut key = String::with_capacity(GENERATED_KEY_LEN);
    while key.len() < GENERATED_KEY_LEN {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .unwrap_or_else(|error| panic!("the operating system's random source failed: {error}"));
        // 252 is the largest multiple of 36 that fits a byte: rejecting above it keeps every
        // character equally likely.
        let wanted = GENERATED_KEY_LEN - key.len();
        key.extend(bytes.iter().filter(|b| **b < 252).map(|b| char::from(ALPHABET[usize::from(b % 36)])).take(wanted));
    }
    key
}
