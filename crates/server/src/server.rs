//! `hookflow serve`: assembles the plugin host, the store, the catalog, dispatch and the HTTP
//! routes, listens, and shuts down cleanly (stop accepting, finish in-flight requests, make every
//! record durable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Uri;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::activity::{self, ActivityCounter};
use crate::catalog::Catalog;
use crate::cluster::{self, Installed};
use crate::dispatch::{DispatchConfig, Dispatcher};
use crate::http::admin::{self, Admin};
use crate::http::api_error::{ApiError, ErrorCode};
use crate::http::ingress::{self, Ingress, TRIGGER_PATH};
use crate::http::listener::{self, ListenerConfig};
use crate::metrics::ProcessMetrics;
use crate::reload::{self, Watched};
use crate::retention::{self, RetentionConfig};
use hookflow_plugin::{HostConfig, LoadError, PluginHost};
pub use hookflow_store::PostgresConfig;
use hookflow_store::{Store, StoreConfig, StoreError};
use hookflow_workflow::{Clock, ExecutionLimits, SystemClock};

/// The example workflows `--demo` deploys: `(file name, definition)`.
pub const DEMO_WORKFLOWS: &[(&str, &str)] = &[
    ("demo-payment.json", include_str!("../../../examples/workflows/demo-payment.json")),
    ("demo-payment-async.json", include_str!("../../../examples/workflows/demo-payment-async.json")),
];

/// How many refused trigger requests the refusal log keeps per workflow by default.
pub const DEFAULT_KEEP_REFUSALS: usize = 10_000;

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory of the database (`hookflow.redb`, unless `postgres` is set) and the
    /// compiled-component cache.
    pub data_dir: PathBuf,
    /// Keep every piece of shared state in PostgreSQL, shared with the other nodes of a cluster
    /// (`--store postgres://…`); `None` keeps it in a redb file in `data_dir`.
    pub postgres: Option<PostgresConfig>,
    /// Directory of workflow definitions (`*.json`) deployed at start.
    pub workflows_dir: Option<PathBuf>,
    /// Directory of custom node components (`<type>.wasm`).
    pub plugins_dir: Option<PathBuf>,
    /// Deploy the example workflows.
    pub demo: bool,
    /// Origin of printed webhook URLs (default `http://<listen address>`), and the URL senders
    /// sign (Twilio).
    pub public_url: Option<String>,
    /// Proxies in front whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Refused trigger requests kept in the refusal log per workflow (`--keep-refusals`); 0
    /// keeps none.
    pub keep_refusals: usize,
    /// Bearer token of the admin API; `None` opens it to loopback clients only.
    pub admin_token: Option<String>,
    /// Largest accepted trigger body, in bytes.
    pub body_limit: usize,
    /// Connection limits (the body must also arrive within `read_timeout`).
    pub limits: ListenerConfig,
    /// Node limits; its `cache_dir` is set under `data_dir` when absent.
    pub host: HostConfig,
    /// Sync timeout and workers.
    pub dispatch: DispatchConfig,
    /// How long finished executions are kept.
    pub retention: RetentionConfig,
    /// What one execution may hold (`--max-jobs`, `--max-record`, `--max-run-time`).
    pub execution_limits: ExecutionLimits,
    /// The time executions, idempotency keys and retention go by (the system's; tests move a
    /// manual one instead of sleeping).
    pub clock: Arc<dyn Clock>,
}

impl ServerConfig {
    /// Defaults for everything but where to listen and keep data.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            listen,
            data_dir,
            postgres: None,
            workflows_dir: None,
            plugins_dir: None,
            demo: false,
            public_url: None,
            trusted_proxies: Vec::new(),
            keep_refusals: DEFAULT_KEEP_REFUSALS,
            admin_token: None,
            body_limit: 1 << 20,
            limits: ListenerConfig::default(),
            host: HostConfig::default(),
            dispatch: DispatchConfig::default(),
            retention: RetentionConfig::default(),
            execution_limits: ExecutionLimits::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The plugin host could not start, or a directory of plugins could not be read.
    #[error(transparent)]
    Plugins(#[from] LoadError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory could not be created or made private.
    #[error("cannot make the data directory private at {path}: {source}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The workflows directory could not be read.
    #[error("cannot read the workflows directory {path}: {source}")]
    WorkflowsDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A deployed webhook as start-up reports it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The workflow key.
    pub key: String,
    /// The full webhook URL.
    pub url: String,
    /// Whether the caller waits for the execution.
    pub sync: bool,
}

/// A running server.
pub struct Server {
    /// The address it listens on.
    pub address: SocketAddr,
    /// Every enabled workflow's webhook.
    pub endpoints: Vec<Endpoint>,
    /// Definitions that were refused at start, as `path: fault` lines.
    pub refused: Vec<String>,
    store: Store,
    host: Arc<PluginHost>,
    dispatcher: Arc<Dispatcher>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<()>,
    /// Background tasks (hot reload, retention), aborted at stop.
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts everything and begins accepting requests.
    pub async fn start(mut config: ServerConfig) -> Result<Server, ServerError> {
        let database = config.data_dir.join("hookflow.redb");
        private_data_dir(&config.data_dir, &database)?;
        config.host.cache_dir.get_or_insert_with(|| config.data_dir.join("component-cache"));
        let host_config = HostConfig { observer: Some(Arc::new(ProcessMetrics)), ..config.host.clone() };
        let host = tokio::task::spawn_blocking(move || PluginHost::new(host_config))
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))?;
        let host = Arc::new(host);

        let store_config = match &config.postgres {
            Some(postgres) => StoreConfig::Postgres(postgres.clone()),
            None => StoreConfig::Embedded { path: database.clone() },
        };
        let store = Store::open(&store_config, Some(Arc::new(ProcessMetrics))).await?;
        if config.postgres.is_none() {
            restrict_to_owner(&database, 0o600)
                .map_err(|source| ServerError::DataDir { path: database.clone(), source })?;
        }
        let mut refused = Vec::new();
        // Uploaded components first (a directory of them is where an older hookflow kept them);
        // the operator's --plugins directory may replace them.
        import_uploaded_dir(&store, &host, &config.data_dir.join("plugins"), &mut refused).await?;
        let installed = Arc::new(Installed::default());
        cluster::sync_plugins(&store, &host, &installed).await?;
        if let Some(dir) = &config.plugins_dir {
            let (loaded, errors) = host.install_dir(dir)?;
            for plugin in loaded {
                tracing::info!(plugin = %plugin.name, digest = %plugin.digest, "installed custom node");
            }
            refused.extend(errors.iter().map(ToString::to_string));
        }

        let catalog = Arc::new(Catalog::load(store.clone(), host.clone(), config.execution_limits).await?);
        let mut sources: Vec<(String, String)> = Vec::new();
        if config.demo {
            sources.extend(DEMO_WORKFLOWS.iter().map(|(name, json)| (format!("demo:{name}"), json.to_string())));
        }
        if let Some(dir) = &config.workflows_dir {
            sources.extend(read_definitions(dir, &mut refused)?);
        }
        for (source, json) in sources {
            if let Err(error) = catalog.deploy_source(&source, &json).await {
                refused.push(format!("{source}: {error}"));
            }
        }
        for line in &refused {
            tracing::error!("refused: {line}");
        }

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen { address: config.listen, source })?;
        let address = listener.local_addr().map_err(|source| ServerError::Listen { address: config.listen, source })?;
        let origin = config.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
        store.join(&origin).await?;
        let activity = Arc::new(ActivityCounter::new(config.clock.clone()));
        let dispatcher = Dispatcher::start(
            host.clone(),
            store.clone(),
            catalog.clone(),
            &config.dispatch,
            config.clock.clone(),
            activity.clone(),
        )
        .await?;
        let endpoints = catalog
            .all()
            .iter()
            .filter(|deployed| deployed.workflow().enabled)
            .map(|deployed| Endpoint {
                key: deployed.key.clone(),
                url: format!("{}{TRIGGER_PATH}{}", origin.trim_end_matches('/'), deployed.key),
                sync: deployed.workflow().sync,
            })
            .collect();

        if config.admin_token.is_none() {
            tracing::info!("admin API: no token configured, answering loopback clients only");
        }
        let admin = Arc::new(Admin {
            catalog: catalog.clone(),
            store: store.clone(),
            host: host.clone(),
            dispatcher: dispatcher.clone(),
            token: config.admin_token.clone(),
            origin: origin.clone(),
        });
        let watched = Watched { workflows_dir: config.workflows_dir.clone(), plugins_dir: config.plugins_dir.clone() };
        let mut background = vec![
            tokio::spawn(reload::watch(watched, catalog.clone(), admin.host.clone())),
            tokio::spawn(retention::run(store.clone(), config.retention.clone(), config.clock.clone())),
            tokio::spawn(activity::flush_every(activity.clone(), store.clone())),
        ];
        if store.is_shared() {
            let events = store.events();
            background.push(tokio::spawn(cluster::follow(
                store.clone(),
                catalog.clone(),
                host.clone(),
                installed,
                events,
            )));
        }
        let ingress = Arc::new(Ingress {
            catalog,
            dispatcher: dispatcher.clone(),
            body_limit: config.body_limit,
            read_timeout: config.limits.read_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
            public_url: config.public_url.clone(),
            keep_refusals: config.keep_refusals,
        });
        let app = Router::new().merge(ingress::router(ingress)).merge(admin::router(admin)).fallback(not_found);
        let (stop, stopped) = oneshot::channel::<()>();
        // In-flight sync requests end within the sync timeout; give them that long to drain.
        let drain = config.dispatch.sync_timeout + Duration::from_secs(1);
        let limits = config.limits.clone();
        let serving = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            listener::serve(listener, app, &limits, stopped, drain).await;
        });
        tracing::info!(%address, "hookflow is listening");
        Ok(Server { address, endpoints, refused, store, host, dispatcher, stop, serving, background })
    }

    /// Stops accepting, lets in-flight requests and sync executions finish (each up to the sync
    /// timeout), makes every record durable and, in a cluster, releases this node's claims for the
    /// others.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.background.iter().for_each(JoinHandle::abort);
        self.dispatcher.stop();
        let _ = self.stop.send(());
        self.serving.await.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        self.dispatcher.drain_sync().await;
        self.dispatcher.activity().flush(&self.store).await;
        self.store.flush().await?;
        self.store.leave().await?;
        Ok(())
    }

    /// The server's store (for inspection by tests and tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server's plugin host (for inspection by tests and tools).
    pub fn host(&self) -> &PluginHost {
        &self.host
    }
}

/// Creates the data directory `0700`, or tightens an existing one to that, before the database
/// (which holds secrets) is opened in it; an existing database file is tightened to `0600`.
fn private_data_dir(dir: &Path, database: &Path) -> Result<(), ServerError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServerError::DataDir { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    restrict_to_owner(dir, 0o700).map_err(failed(dir))?;
    if database.exists() {
        restrict_to_owner(database, 0o600).map_err(failed(database))?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Components an older hookflow kept in `<data>/plugins/` when they were uploaded: each one the
/// store does not hold yet is installed and kept in the store (the directory is left as it is).
async fn import_uploaded_dir(
    store: &Store,
    host: &Arc<PluginHost>,
    dir: &Path,
    refused: &mut Vec<String>,
) -> Result<(), ServerError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let stored: Vec<String> = store.plugins().await?.into_iter().map(|plugin| plugin.name).collect();
    let (loaded, errors) = host.install_dir(dir)?;
    refused.extend(errors.iter().map(ToString::to_string));
    for plugin in loaded.iter().filter(|plugin| !stored.contains(&plugin.name)) {
        let path = dir.join(format!("{}.wasm", plugin.name));
        match std::fs::read(&path) {
            Ok(component) => {
                store.put_plugin(&plugin.name, &plugin.digest, &component).await?;
                tracing::info!(plugin = %plugin.name, "moved an uploaded custom node from {} into the store", path.display());
            }
            Err(error) => refused.push(format!("{}: {error}", path.display())),
        }
    }
    Ok(())
}

/// Every `*.json` file of `dir` as `(path, contents)`; unreadable files go to `refused`.
fn read_definitions(dir: &Path, refused: &mut Vec<String>) -> Result<Vec<(String, String)>, ServerError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ServerError::WorkflowsDir { path: dir.into(), source })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut definitions = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(json) => definitions.push((path.display().to_string(), json)),
            Err(error) => refused.push(format!("{}: {error}", path.display())),
        }
    }
    Ok(definitions)
}

async fn not_found(uri: Uri) -> impl IntoResponse {
    ApiError::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}
