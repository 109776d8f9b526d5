//! The node's HTTP API (axum): `GET /status` (JSON) and `GET /metrics` (Prometheus text).
//!
//! Reads snapshots the node loop publishes; must not touch the chain or the network itself.

pub mod metrics;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use metrics::Metrics;

/// What `GET /status` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub network: String,
    /// This node's key fingerprint (hex).
    pub node_id: String,
    pub height: u64,
    /// Tip hash in display order (byte-reversed hex).
    pub tip: String,
    /// Cumulative work of the best chain, as a decimal number.
    pub total_work: String,
    pub peers: Vec<PeerStatus>,
    /// The miner's recent rate in hashes per second (0 when not mining).
    pub hash_rate: f64,
    /// The mining backend (`cpu: sha-ni-2x, 2 threads`…), or `none`.
    pub backend: String,
    pub mining: bool,
    pub blocks_mined: u64,
    pub receipts_pooled: usize,
    /// QUIC address peers connect to.
    pub listen: String,
    /// Raft's view, when this node takes part in consensus (a `[train]` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusStatus>,
}

/// Raft's part of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    pub term: u64,
    /// The leader's fingerprint (hex), when known.
    pub leader: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Fingerprints (hex) of the current voters.
    pub voters: Vec<String>,
}

/// One connected peer in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: String,
    pub addr: String,
    pub outbound: bool,
    /// The connection's TLS key-exchange group, e.g. `X25519MLKEM768`.
    #[serde(default)]
    pub key_exchange: String,
}

#[derive(Clone)]
struct ApiState {
    status: watch::Receiver<NodeStatus>,
    metrics: Metrics,
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

/// How long a client may take to send a request's headers, and an idle keep-alive connection
/// may wait for its next request, before the server closes the connection (so a slowloris
/// client cannot hold connections forever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves the API until `shutdown` resolves; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    status_rx: watch::Receiver<NodeStatus>,
    metrics_source: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    serve_with_header_timeout(
        addr,
        status_rx,
        metrics_source,
        shutdown,
        HEADER_READ_TIMEOUT,
    )
    .await
}

/// `serve` with another header-read timeout.
pub async fn serve_with_header_timeout(
    addr: SocketAddr,
    status_rx: watch::Receiver<NodeStatus>,
    metrics_source: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(ApiState {
            status: status_rx,
            metrics: metrics_source,
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
