//! The PostgreSQL writer: one task with a connection of its own, one transaction per batch of
//! pending requests (group commit over the network), its statements pipelined — sent together,
//! in order, and answered in one round trip. A batch of only lazy writes commits with
//! `synchronous_commit` off (the next durable commit makes it durable). Nodes hear of queued
//! work through a `NOTIFY` sent after the commit, outside the transaction (a `NOTIFY` inside
//! one serialises the commits of every node).
//!
//! A lost connection (the server restarting, a network cut) marks the store failed and keeps
//! the batch: the writer reconnects with backoff and applies it again — its statements are
//! idempotent, and a request that queued an execution is first checked by that execution's id,
//! since its commit may have landed before the connection went. Waiting callers get an answer
//! within [`RETRY_WINDOW`]: the outcome, or "unavailable". A statement the server refuses fails
//! its own request only: the batch is applied again one request per transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::connect::Target;
use super::sql::{self, Role, Statement};
use super::{Shared, is_connection_error};
use crate::op::{Applied, Op, Request};
use crate::{RECOVERY_INTERVAL, StoreError, StoreEvent};

/// Whether an execution is stored (its enqueue committed).
const STORED: &str = "SELECT 1 FROM hookflow.executions WHERE id = $1";

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 1024;

/// How long a caller waiting on a write waits for a lost connection to come back.
const RETRY_WINDOW: Duration = Duration::from_secs(5);

/// Most background writes kept while the database cannot be reached; past it the oldest are
/// dropped (and logged).
const MAX_KEPT: usize = 100_000;

/// Handle to the writer task; the task ends when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    requests: mpsc::UnboundedSender<Request>,
}

impl Writer {
    /// Starts the writer task on `client` (connected already).
    pub(crate) async fn start(
        target: Target,
        client: tokio_postgres::Client,
        shared: Arc<Shared>,
    ) -> Result<Writer, StoreError> {
        let (requests, incoming) = mpsc::unbounded_channel();
        let connection = Connection::prepare(client).await.map_err(|error| target.unreachable(error))?;
        let state = State { target, connection: Some(connection), shared, retrying: Vec::new() };
        tokio::spawn(state.run(incoming));
        Ok(Writer { requests })
    }

    /// Applies `request` in a coming batch.
    pub(crate) fn submit(&self, request: Request) {
        if let Err(unsent) = self.requests.send(request)
            && unsent.0.done.is_none()
        {
            tracing::error!("store closed: a background write was dropped");
        }
    }
}

/// A connection with every statement prepared.
struct Connection {
    client: tokio_postgres::Client,
    statements: HashMap<&'static str, tokio_postgres::Statement>,
}

impl Connection {
    async fn prepare(client: tokio_postgres::Client) -> Result<Connection, tokio_postgres::Error> {
        let prepared = join_all(sql::ALL.iter().map(|text| client.prepare(text))).await;
        let mut statements = HashMap::with_capacity(sql::ALL.len());
        for (text, statement) in sql::ALL.iter().zip(prepared) {
            statements.insert(*text, statement?);
        }
        Ok(Connection { client, statements })
    }
}

/// A request whose batch failed with the connection, and since when its caller waits.
struct Retrying {
    request: Request,
    since: Instant,
}

struct State {
    target: Target,
    connection: Option<Connection>,
    shared: Arc<Shared>,
    /// Requests of a batch whose connection was lost, applied again once connected.
    retrying: Vec<Retrying>,
}

/// Why a batch did not commit.
enum Failure {
    /// The connection is gone: the commit may or may not have landed.
    Connection(StoreError),
    /// The server refused a statement: nothing of the batch was written.
    Refused(StoreError),
}

impl State {
    async fn run(mut self, mut incoming: mpsc::UnboundedReceiver<Request>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let first = if self.retrying.is_empty() {
                match incoming.recv().await {
                    Some(first) => Some(first),
                    None => return,
                }
            } else {
                match tokio::time::timeout(backoff, incoming.recv()).await {
                    Ok(Some(first)) => Some(first),
                    Ok(None) => return,
                    Err(_) => None,
                }
            };
            let mut fresh: Vec<Request> = first.into_iter().collect();
            while fresh.len() < MAX_BATCH
                && let Ok(next) = incoming.try_recv()
            {
                fresh.push(next);
            }
            if !self.connected().await {
                backoff = (backoff * 2).min(RECOVERY_INTERVAL);
                self.refuse_while_down(fresh);
                continue;
            }
            backoff = Duration::from_millis(100);
            if !self.retrying.is_empty() && !self.settle_unknown_outcomes().await {
                self.refuse_while_down(fresh);
                continue;
            }
            let mut batch: Vec<Request> = std::mem::take(&mut self.retrying).into_iter().map(|r| r.request).collect();
            batch.extend(fresh);
            self.write(batch).await;
        }
    }

    /// Whether a connection is up, connecting when it is not.
    async fn connected(&mut self) -> bool {
        if self.connection.as_ref().is_some_and(|connection| !connection.client.is_closed()) {
            return true;
        }
        self.connection = None;
        let connected = match self.target.connect().await {
            Ok(client) => Connection::prepare(client).await.map_err(|error| self.target.unreachable(error)),
            Err(error) => Err(error),
        };
        match connected {
            Ok(connection) => {
                tracing::info!("store: connected to {} again", self.target.location);
                self.connection = Some(connection);
                true
            }
            Err(error) => {
                self.shared.set_failure(Some(error));
                false
            }
        }
    }

    /// While the database cannot be reached: new callers hear so at once, background writes
    /// wait, and callers waiting longer than [`RETRY_WINDOW`] give up (their writes dropped).
    fn refuse_while_down(&mut self, fresh: Vec<Request>) {
        let unavailable = self.shared.unavailable();
        for request in fresh {
            match request.done {
                Some(done) => {
                    let _ = done.send(Err(unavailable.clone()));
                }
                None => self.retrying.push(Retrying { request, since: Instant::now() }),
            }
        }
        let now = Instant::now();
        let (expired, waiting): (Vec<Retrying>, Vec<Retrying>) = std::mem::take(&mut self.retrying)
            .into_iter()
            .partition(|retrying| retrying.request.done.is_some() && now.duration_since(retrying.since) > RETRY_WINDOW);
        self.retrying = waiting;
        for retrying in expired {
            if let Some(done) = retrying.request.done {
                let _ = done.send(Err(unavailable.clone()));
            }
        }
        if self.retrying.len() > MAX_KEPT {
            let dropped = self.retrying.len() - MAX_KEPT;
            tracing::error!("store: {dropped} background writes dropped while the database cannot be reached");
            self.retrying.drain(..dropped);
        }
    }

    /// Requests that queued an execution in a batch whose commit may have landed: those whose
    /// execution is stored did land and are answered `Done` instead of applied again. `false`
    /// when the connection went again.
    async fn settle_unknown_outcomes(&mut self) -> bool {
        let queued: Vec<(usize, String)> = self
            .retrying
            .iter()
            .enumerate()
            .filter_map(|(index, retrying)| {
                retrying.request.ops.iter().find_map(|op| match op {
                    Op::Enqueue { id, .. } => Some((index, id.clone())),
                    _ => None,
                })
            })
            .collect();
        let mut settled = Vec::new();
        for (index, id) in queued {
            let Some(connection) = &self.connection else { return false };
            match connection.client.query_opt(STORED, &[&id]).await {
                Ok(Some(_)) => settled.push(index),
                Ok(None) => {}
                Err(error) => {
                    self.lost(error);
                    return false;
                }
            }
        }
        for index in settled.into_iter().rev() {
            let retrying = self.retrying.remove(index);
            if let Some(done) = retrying.request.done {
                let _ = done.send(Ok(Applied::Done));
            }
        }
        true
    }

    fn lost(&mut self, error: tokio_postgres::Error) {
        tracing::error!("store: the connection to {} failed: {error}", self.target.location);
        self.connection = None;
        self.shared.set_failure(Some(StoreError::Write(Arc::new(error))));
    }

    /// Commits a batch and answers its callers (or keeps it, when the connection went).
    async fn write(&mut self, batch: Vec<Request>) {
        let durable = batch.iter().any(|request| request.durable);
        let started = Instant::now();
        let outcome = self.commit(&batch, durable).await;
        if let Some(observer) = &self.shared.observer {
            observer.commit(started.elapsed());
        }
        match outcome {
            Ok(applied) => {
                self.shared.set_failure(None);
                self.committed(batch, applied).await;
            }
            Err(Failure::Connection(error)) => {
                tracing::error!("store: a commit of {} writes lost its connection: {error}", batch.len());
                self.connection = None;
                self.shared.set_failure(Some(error));
                let now = Instant::now();
                self.retrying.extend(batch.into_iter().map(|request| Retrying { request, since: now }));
            }
            Err(Failure::Refused(error)) if batch.len() == 1 => {
                tracing::error!("store: a write was refused: {error}");
                for request in batch {
                    if let Some(done) = request.done {
                        let _ = done.send(Err(error.clone()));
                    }
                }
            }
            // One request spoiled the batch: each goes again on its own.
            Err(Failure::Refused(_)) => {
                for request in batch {
                    Box::pin(self.write(vec![request])).await;
                }
            }
        }
    }

    /// After a commit: callers hear how their request went; this node's claimer hears of work
    /// that may be claimable now, and the other nodes (through the database) of new work.
    async fn committed(&mut self, batch: Vec<Request>, applied: Vec<Applied>) {
        let (mut local, mut announce) = (false, false);
        for (request, applied) in batch.into_iter().zip(applied) {
            if applied == Applied::Done {
                for op in &request.ops {
                    match op {
                        Op::Enqueue { owner: None, .. } => (local, announce) = (true, true),
                        // Due later, or a place under a concurrency limit came free: the other
                        // nodes find it when they next look.
                        Op::Release { .. } | Op::Dequeue { .. } | Op::RequestCancel { .. } => local = true,
                        _ => {}
                    }
                }
            }
            if let Some(done) = request.done {
                let _ = done.send(Ok(applied));
            }
        }
        if local {
            let _ = self.shared.events.send(StoreEvent::QueueReady);
        }
        if announce
            && let Some(connection) = &self.connection
            && let Err(error) = connection.client.execute(sql::NOTIFY, &[&sql::QUEUE_CHANNEL, &""]).await
        {
            tracing::warn!("store: could not announce queued work: {error}");
        }
    }

    /// Runs a batch's statements, pipelined, in one transaction.
    async fn commit(&self, batch: &[Request], durable: bool) -> Result<Vec<Applied>, Failure> {
        let Some(connection) = &self.connection else {
            return Err(Failure::Connection(self.shared.unavailable()));
        };
        let requests: Vec<Vec<Statement<'_>>> = batch
            .iter()
            .map(|request| {
                let fence = request.fence.as_ref().map(|fence| (fence.id.as_str(), fence.owner));
                sql::statements(&request.ops, fence)
            })
            .collect();
        let begin = if durable { "BEGIN" } else { "BEGIN; SET LOCAL synchronous_commit TO OFF" };
        let client = &connection.client;
        let all: Vec<&Statement<'_>> = requests.iter().flatten().collect();
        let values: Vec<Vec<&(dyn tokio_postgres::types::ToSql + Sync)>> = all.iter().map(|s| s.values()).collect();
        // One ordered pipeline: requests go out in the order their futures are first polled,
        // which `join_all` keeps (BEGIN, the statements, COMMIT), then the answers come back.
        let mut calls: Vec<Call<'_>> = Vec::with_capacity(all.len() + 2);
        calls.push(Box::pin(async move {
            client.batch_execute(begin).await.map(|()| Outcome::Changed(0)).map_err(classify)
        }));
        for (statement, values) in all.iter().zip(&values) {
            let prepared = connection.statements.get(statement.sql);
            calls.push(Box::pin(async move {
                let Some(prepared) = prepared else {
                    return Err(Failure::Refused(StoreError::Config(format!(
                        "statement not prepared: {}",
                        statement.sql
                    ))));
                };
                let result = if statement.query {
                    client.query(prepared, values).await.map(Outcome::Rows)
                } else {
                    client.execute(prepared, values).await.map(Outcome::Changed)
                };
                result.map_err(classify)
            }));
        }
        calls.push(Box::pin(async move {
            client.batch_execute("COMMIT").await.map(|()| Outcome::Changed(0)).map_err(classify)
        }));
        let mut results = join_all(calls).await.into_iter();
        let began = results.next().unwrap_or(Ok(Outcome::Changed(0)));
        let ended = results.next_back().unwrap_or(Ok(Outcome::Changed(0)));
        began?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut failure = None;
        for statements in &requests {
            let mut applied = Applied::Done;
            for statement in statements {
                let result = results.next().unwrap_or(Ok(Outcome::Changed(0)));
                let outcome = match result {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        failure.get_or_insert(error);
                        continue;
                    }
                };
                if applied == Applied::Done
                    && let Some(decided) = decide(statement, &outcome, &batch[outcomes.len()].ops)
                {
                    applied = decided;
                }
            }
            outcomes.push(applied);
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        ended?;
        Ok(outcomes)
    }
}

/// One pipelined call of a batch.
type Call<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, Failure>> + Send + 'a>>;

/// What a statement gave back.
enum Outcome {
    Changed(u64),
    Rows(Vec<tokio_postgres::Row>),
}

/// What a checked statement's result decides for its request, if anything.
fn decide(statement: &Statement<'_>, outcome: &Outcome, ops: &[Op]) -> Option<Applied> {
    let none = match outcome {
        Outcome::Changed(count) => *count == 0,
        Outcome::Rows(rows) => rows.is_empty(),
    };
    match statement.role {
        Role::Plain => None,
        Role::Fence => none.then_some(Applied::Fenced),
        Role::Conflict => none.then_some(Applied::Conflict),
        Role::Skip => none.then_some(Applied::Skipped),
        Role::KeyHolder => {
            let Outcome::Rows(rows) = outcome else { return None };
            let holder: Option<String> = rows.first().and_then(|row| row.try_get(0).ok());
            let ours = ops.iter().find_map(|op| match op {
                Op::TakeIdempotency { execution_id, .. } => Some(execution_id.as_str()),
                _ => None,
            });
            match holder {
                Some(holder) if Some(holder.as_str()) != ours => Some(Applied::Duplicate(holder)),
                _ => None,
            }
        }
    }
}

/// A failed statement: a lost connection, or a refusal by the server.
fn classify(error: tokio_postgres::Error) -> Failure {
    if is_connection_error(&error) {
        Failure::Connection(StoreError::Write(Arc::new(error)))
    } else {
        Failure::Refused(StoreError::Write(Arc::new(error)))
    }
}
