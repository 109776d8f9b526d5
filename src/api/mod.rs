//! The node's HTTP API (axum): `GET /status` (JSON), `GET /metrics` (Prometheus text) and, on
//! a training node, `GET`/`PUT /config/{key}` (the replicated config store, reads at the
//! `?consistency=` the caller picks) and `GET /receipts` (which block holds each round's
//! receipt), and the worker API of an external model (`worker`: register, jobs, params,
//! gradients, reports, `GET /train/checkpoint` as safetensors).
//!
//! Every request that can change something needs the node's token (`auth`: a random
//! `DATA_DIR/.cookie` written at each start, sent as `Authorization: Bearer`); reads are open.
//!
//! Reads the typed views the services publish (`views`) and turns them into JSON at this
//! edge (`status`); sends typed requests down the services' channels. Must not touch the
//! chain, Raft or the network itself, and must not import `node` (the node starts this
//! server, not the other way round).

pub mod auth;
pub mod metrics;
mod status;
pub mod worker;

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
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::views::{
    ConfigFailure, ConfigRequest, NodeViews, ReadMode, ReceiptsRequest, WorkerRequest,
};

pub use auth::{AuthError, COOKIE_FILE, Cookie};
pub use metrics::Metrics;
pub use status::{ConsensusStatus, NodeStatus, PeerStatus, ReceiptEntry, TrainingStatus};

/// What the API serves from.
#[derive(Debug)]
pub struct ApiParts {
    /// The views the chain, consensus and training services publish.
    pub views: NodeViews,
    /// The node's Prometheus registry, served at `GET /metrics`.
    pub metrics: Metrics,
    /// The training service's config requests (`None`: the node does not train).
    pub config: Option<mpsc::Sender<ConfigRequest>>,
    /// Receipt lookups on the chain.
    pub receipts: Option<mpsc::Sender<ReceiptsRequest>>,
    /// The training service's worker requests (`None`: the node does not train).
    pub worker: Option<mpsc::Sender<WorkerRequest>>,
    /// The token every write must carry.
    pub cookie: Cookie,
}

#[derive(Clone)]
struct ApiState {
    views: NodeViews,
    metrics: Metrics,
    config: Option<mpsc::Sender<ConfigRequest>>,
    receipts: Option<mpsc::Sender<ReceiptsRequest>>,
    worker: Option<mpsc::Sender<WorkerRequest>>,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
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
    let mode = match query.consistency.as_deref().map(str::parse::<ReadMode>) {
        None => ReadMode::Linearizable,
        Some(Ok(mode)) => mode,
        Some(Err(reason)) => return error(StatusCode::BAD_REQUEST, reason.to_string()),
    };
    let (reply, answer) = oneshot::channel();
    let request = ConfigRequest::Get {
        key: key.clone(),
        mode,
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
                "consistency": mode.name(),
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
        Ok(Ok(written)) => Json(serde_json::json!({
            "key": written.key,
            "value": written.value,
            "index": written.index,
        }))
        .into_response(),
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
        Ok(found) => Json(found.iter().map(ReceiptEntry::from).collect::<Vec<_>>()).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the chain service stopped"),
    }
}

async fn status(State(state): State<ApiState>) -> Json<NodeStatus> {
    Json(NodeStatus::from(&state.views.snapshot()))
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
    serve_with(addr, parts, shutdown, HEADER_READ_TIMEOUT).await
}

/// `serve` with another header-read timeout (feature `testing`: the slowloris test's hook).
#[cfg(any(test, feature = "testing"))]
pub async fn serve_with_header_timeout(
    addr: SocketAddr,
    parts: ApiParts,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
) -> std::io::Result<SocketAddr> {
    serve_with(addr, parts, shutdown, header_timeout).await
}

async fn serve_with(
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
        .merge(worker::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            parts.cookie,
            auth::require_token,
        ))
        .with_state(ApiState {
            views: parts.views,
            metrics: parts.metrics,
            config: parts.config,
            receipts: parts.receipts,
            worker: parts.worker,
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
