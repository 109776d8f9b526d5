//! The node's HTTP API (axum): `GET /status` (JSON), `GET /metrics` (Prometheus text) and, on
//! a training node, `GET`/`PUT /config/{key}` (the replicated config store, reads at the
//! `?consistency=` the caller picks) and `GET /receipts` (which block holds each round's
//! receipt).
//!
//! Reads snapshots the services publish and sends requests down their channels; must not
//! touch the chain, Raft or the network itself.

pub mod metrics;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::node::consensus::ReadConsistency;

pub use metrics::Metrics;

/// What `GET /status` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The network profile this node runs (`regtest`, …), from its config.
    pub network: String,
    /// This node's key fingerprint (hex).
    pub node_id: String,
    /// Height of the best chain's tip (genesis = 0).
    pub height: u64,
    /// Tip hash in display order (byte-reversed hex).
    pub tip: String,
    /// Cumulative work of the best chain, as a decimal number.
    pub total_work: String,
    /// The peers connected now, inbound and outbound.
    pub peers: Vec<PeerStatus>,
    /// The miner's recent rate in hashes per second (0 when not mining).
    pub hash_rate: f64,
    /// The mining backend (`cpu: sha-ni-2x, 2 threads`…), or `none`.
    pub backend: String,
    /// Whether the miner is running (mining enabled and a backend started).
    pub mining: bool,
    /// Blocks this node has mined since it started (not all of them stay on the best chain).
    pub blocks_mined: u64,
    /// Training receipts waiting in the pool for a block to include them.
    pub receipts_pooled: usize,
    /// QUIC address peers connect to.
    pub listen: String,
    /// Raft's view, when this node takes part in consensus (a `[train]` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusStatus>,
    /// The training service's view, when this node trains (a `[train]` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingStatus>,
}

/// Training's part of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingStatus {
    /// Raft role: `leader`, `follower`, `pre-candidate` or `candidate`.
    pub role: String,
    /// The Raft term the training service last saw.
    pub term: u64,
    /// The leader's fingerprint (hex), when known.
    pub leader: Option<String>,
    /// The last committed round (0 before the first).
    pub round: u64,
    /// Rounds committed (the round log is gap-free, so equal to `round`).
    pub rounds_committed: u64,
    /// The last committed round's mean worker loss.
    pub loss: Option<f32>,
    /// Held-out test accuracy (0..1) after `evaluated_round`.
    pub accuracy: Option<f32>,
    /// Held-out test loss after `evaluated_round`.
    pub test_loss: Option<f32>,
    /// The round after which `accuracy` and `test_loss` were measured (0: not yet evaluated).
    pub evaluated_round: u64,
    /// Rounds this node abandoned as leader.
    pub rounds_abandoned: u64,
    /// Gradients this node refused as leader.
    pub gradients_refused: u64,
    /// Gradient bytes this node accepted as leader.
    pub bytes_received: u64,
    /// Hash of the params after `round`.
    pub params_hash: String,
    /// The round whose params this node's trainer holds (checked against the committed hash).
    pub trained_round: u64,
    /// The round of the last Raft snapshot whose training state the trainer jumped to (0:
    /// none; it replayed every round).
    #[serde(default)]
    pub restored_round: u64,
    /// Workers in the cluster's list.
    pub workers: usize,
    /// Whether this node computes gradients.
    pub worker: bool,
}

/// A config request from the API to the training service.
#[derive(Debug)]
pub enum ConfigRequest {
    /// Reads a key from the replicated config store.
    Get {
        /// The config key to read.
        key: String,
        /// How the read is confirmed before it sees the store.
        consistency: ReadConsistency,
        /// Gets the value (`None`: the key is unset) or why the read failed.
        reply: oneshot::Sender<Result<Option<String>, ConfigFailure>>,
    },
    /// Writes a key through Raft, optionally as a compare-and-set.
    Put {
        /// The config key to write.
        key: String,
        /// The new value (`PUT /config/{key}` trims surrounding whitespace from the body).
        value: String,
        /// `Some`: compare-and-set against this value (`Some(None)`: only if unset).
        expected: Option<Option<String>>,
        /// Gets the committed write or why it did not apply.
        reply: oneshot::Sender<Result<ConfigWritten, ConfigFailure>>,
    },
}

/// A config write that applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigWritten {
    /// The key written.
    pub key: String,
    /// The value it now holds.
    pub value: String,
    /// The Raft log index it committed at.
    pub index: u64,
}

/// Why a config request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFailure {
    /// A bad key or value (400).
    BadRequest(String),
    /// A compare-and-set found another value (409).
    CasFailed {
        /// The value the key holds now (`None`: unset).
        current: Option<String>,
    },
    /// Not done: no leader, the leader unreachable, the entry dropped by a new leader (503);
    /// retry.
    Unavailable(String),
    /// A write whose outcome is unknown: it was proposed but no answer came in time, so it may
    /// or may not take effect (504); read before retrying a compare-and-set.
    Unknown(String),
}

/// A committed round's receipt as `GET /receipts` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEntry {
    /// The training round the receipt records.
    pub round: u64,
    /// The best-chain block holding it (display hex) and its height.
    pub block: String,
    /// Height of that block on the best chain.
    pub height: u64,
    /// Hash of the params after the round, as the receipt records it.
    pub params_hash: String,
    /// Fingerprints (hex) of the workers whose gradients the round reduced.
    pub contributors: Vec<String>,
}

/// Asks the chain for the training receipts on its best chain.
pub type ReceiptsRequest = oneshot::Sender<Vec<ReceiptEntry>>;

/// What the API serves from.
#[derive(Debug)]
pub struct ApiParts {
    /// The latest status the chain, consensus and training services publish.
    pub status: watch::Receiver<NodeStatus>,
    /// The node's Prometheus registry, served at `GET /metrics`.
    pub metrics: Metrics,
    /// The training service's config requests (`None`: the node does not train).
    pub config: Option<mpsc::Sender<ConfigRequest>>,
    /// Receipt lookups on the chain.
    pub receipts: Option<mpsc::Sender<ReceiptsRequest>>,
}

/// Raft's part of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// The current Raft term.
    pub term: u64,
    /// The leader's fingerprint (hex), when known.
    pub leader: Option<String>,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to the state machine (at most `commit_index`).
    pub applied_index: u64,
    /// Fingerprints (hex) of the current voters.
    pub voters: Vec<String>,
    /// Index of the latest snapshot: the log before it is compacted away (0: none).
    #[serde(default)]
    pub snapshot_index: u64,
    /// Entries held in the log after the snapshot.
    #[serde(default)]
    pub log_entries: u64,
    /// Snapshots a leader sent this node (it was too far behind to catch up from entries).
    #[serde(default)]
    pub snapshots_installed: u64,
    /// Snapshots this node took of its own state to compact its log.
    #[serde(default)]
    pub snapshots_taken: u64,
}

/// One connected peer in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's key fingerprint (hex).
    pub id: String,
    /// The peer's QUIC listen address, or the connection's remote address when it did not give one.
    pub addr: String,
    /// True when this node dialed the connection.
    pub outbound: bool,
    /// The connection's TLS key-exchange group, e.g. `X25519MLKEM768`.
    #[serde(default)]
    pub key_exchange: String,
}

#[derive(Clone)]
struct ApiState {
    status: watch::Receiver<NodeStatus>,
    metrics: Metrics,
    config: Option<mpsc::Sender<ConfigRequest>>,
    receipts: Option<mpsc::Sender<ReceiptsRequest>>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, Json(body)).into_response()
}

fn not_training() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this node does not train (its config has no [train] section)",
    )
}

fn failure(failure: ConfigFailure) -> Response {
    match failure {
        ConfigFailure::BadRequest(reason) => error(StatusCode::BAD_REQUEST, reason),
        ConfigFailure::CasFailed { current } => {
            let body = serde_json::json!({
                "error": "compare-and-set failed: the key holds another value",
                "current": current,
            });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        ConfigFailure::Unavailable(reason) => error(StatusCode::SERVICE_UNAVAILABLE, reason),
        ConfigFailure::Unknown(reason) => error(StatusCode::GATEWAY_TIMEOUT, reason),
    }
}

#[derive(Deserialize)]
struct ReadQuery {
    consistency: Option<String>,
}

#[derive(Deserialize)]
struct WriteQuery {
    /// Compare-and-set: write only if the key holds this value.
    expect: Option<String>,
    /// Compare-and-set: write only if the key is unset (`expect_unset=true`).
    #[serde(default)]
    expect_unset: bool,
}

async fn get_config(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Response {
    let Some(config) = state.config else {
        return not_training();
    };
    let consistency = match query.consistency.as_deref().map(str::parse) {
        None => ReadConsistency::Linearizable,
        Some(Ok(level)) => level,
        Some(Err(reason)) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let (reply, answer) = oneshot::channel();
    let request = ConfigRequest::Get {
        key: key.clone(),
        consistency,
        reply,
    };
    if config.send(request).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the training service stopped",
        );
    }
    match answer.await {
        Ok(Ok(value)) => {
            let found = value.is_some();
            let body = serde_json::json!({
                "key": key,
                "value": value,
                "consistency": format!("{consistency:?}").to_ascii_lowercase(),
            });
            let status = if found {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            (status, Json(body)).into_response()
        }
        Ok(Err(reason)) => failure(reason),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the training service stopped",
        ),
    }
}

async fn put_config(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    Query(query): Query<WriteQuery>,
    value: String,
) -> Response {
    let Some(config) = state.config else {
        return not_training();
    };
    let expected = match (query.expect, query.expect_unset) {
        (Some(_), true) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either expect=VALUE or expect_unset=true, not both",
            );
        }
        (Some(value), false) => Some(Some(value)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let (reply, answer) = oneshot::channel();
    let request = ConfigRequest::Put {
        key,
        value: value.trim().to_string(),
        expected,
        reply,
    };
    if config.send(request).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the training service stopped",
        );
    }
    match answer.await {
        Ok(Ok(written)) => Json(written).into_response(),
        Ok(Err(reason)) => failure(reason),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the training service stopped while the write was in flight; it may have been applied",
        ),
    }
}

async fn receipts(State(state): State<ApiState>) -> Response {
    let Some(receipts) = state.receipts else {
        return not_training();
    };
    let (reply, answer) = oneshot::channel();
    if receipts.send(reply).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the chain service stopped");
    }
    match answer.await {
        Ok(entries) => Json(entries).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the chain service stopped"),
    }
}

async fn status(State(state): State<ApiState>) -> Json<NodeStatus> {
    Json(state.status.borrow().clone())
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Largest request body (a config value is at most 4 KiB).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a client may take to send a request's headers, and an idle keep-alive connection
/// may wait for its next request, before the server closes the connection (so a slowloris
/// client cannot hold connections forever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves the API until `shutdown` resolves; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    parts: ApiParts,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    serve_with_header_timeout(addr, parts, shutdown, HEADER_READ_TIMEOUT).await
}

/// `serve` with another header-read timeout.
pub async fn serve_with_header_timeout(
    addr: SocketAddr,
    parts: ApiParts,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/config/{key}", get(get_config).put(put_config))
        .route("/receipts", get(receipts))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ApiState {
            status: parts.status,
            metrics: parts.metrics,
            config: parts.config,
            receipts: parts.receipts,
        });
    tokio::spawn(accept_loop(listener, app, shutdown, header_timeout));
    Ok(bound)
}

/// Serves each accepted connection with hyper's HTTP/1 server and its header-read timer,
/// until `shutdown`; then lets in-flight requests finish for up to a second.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, then accept again.
                    tracing::debug!(%error, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection closed");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}
