//! The worker API (`train.model = "external"`): a worker process on the node's machine
//! registers its model, long-polls for jobs, fetches params by hash as raw little-endian f32,
//! submits gradients the same way and reports evaluation metrics; anyone may fetch the
//! committed params as a safetensors checkpoint. Every write carries the node's token (the
//! `auth` layer on the router). Served on the API port, not a Unix socket: the token already
//! guards writes, remote workers and `curl` work the same way, and tests reach it like any
//! other route.
//!
//! Converts bytes and JSON to the typed `WorkerRequest`s at this edge and answers with the
//! service's reason; decides nothing about rounds.

// The helpers return an axum `Response` as their error: it is what every handler answers with.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::train::StateHash;
use crate::train::checkpoint;
use crate::views::{GradientSubmission, ParamsView, WorkerFailure, WorkerReport, WorkerRequest};

use super::{ApiState, error};

/// Largest register or gradient body: 64 Mi values (a bigger model needs another transport).
pub const MAX_WORKER_BODY: usize = 256 << 20;
/// Longest long poll.
const MAX_WAIT_MS: u64 = 60_000;

/// The worker routes, with their own body limit.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/train/register", post(register))
        .route("/train/gradient", post(gradient))
        .route("/train/report", post(report))
        .layer(DefaultBodyLimit::max(MAX_WORKER_BODY))
        .route("/train/job", get(job))
        .route("/train/params/{hash}", get(params))
        .route("/train/checkpoint", get(checkpoint_file))
}

fn refused(failure: WorkerFailure) -> Response {
    match failure {
        WorkerFailure::BadRequest(reason) => error(StatusCode::BAD_REQUEST, reason),
        WorkerFailure::UnknownWorker(reason) => error(StatusCode::NOT_FOUND, reason),
        WorkerFailure::Stale(reason) | WorkerFailure::LayoutDiffers(reason) => {
            error(StatusCode::CONFLICT, reason)
        }
        WorkerFailure::Unavailable(reason) => error(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

fn not_external() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this node does not train (its config has no [train] section)",
    )
}

async fn ask<T>(
    state: &ApiState,
    request: impl FnOnce(oneshot::Sender<Result<T, WorkerFailure>>) -> WorkerRequest,
) -> Result<T, Response> {
    let Some(worker) = &state.worker else {
        return Err(not_external());
    };
    let (reply, answer) = oneshot::channel();
    let stopped = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the training service stopped",
        )
    };
    worker.send(request(reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?.map_err(refused)
}

/// `POST /train/register`: the body is a safetensors file of F32 tensors in vector order
/// (the order of their data); the first one becomes round 0.
async fn register(State(state): State<ApiState>, body: Bytes) -> Response {
    let decoded = match tokio::task::spawn_blocking(move || checkpoint::decode(&body)).await {
        Ok(Ok(decoded)) => decoded,
        Ok(Err(reason)) => return error(StatusCode::BAD_REQUEST, reason.to_string()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "decoder failed"),
    };
    let answer = ask(&state, |reply| WorkerRequest::Register {
        layout: decoded.layout,
        values: decoded.values,
        reply,
    })
    .await;
    match answer {
        Ok(registered) => Json(serde_json::json!({
            "worker": registered.worker,
            "params_hash": registered.params_hash.to_string(),
            "created": registered.created,
        }))
        .into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct JobQuery {
    /// Wait for a job of a later round than this.
    after: Option<u64>,
    /// How long to wait (ms, at most 60 000; default 30 000).
    wait_ms: Option<u64>,
}

/// `GET /train/job?after=R&wait_ms=T`: the open job of a round after `R`, or 204 when none
/// opened within the wait.
async fn job(State(state): State<ApiState>, Query(query): Query<JobQuery>) -> Response {
    let Some(mut training) = state.views.training.clone() else {
        return not_external();
    };
    let after = query.after.unwrap_or(0);
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(30_000).min(MAX_WAIT_MS));
    let found = tokio::time::timeout(wait, async {
        loop {
            if let Some(job) = training
                .borrow_and_update()
                .job
                .clone()
                .filter(|j| j.round > after)
            {
                return Some(job);
            }
            if training.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    match found {
        Ok(Some(job)) => Json(serde_json::json!({
            "round": job.round,
            "params_hash": job.params_hash.to_string(),
            "worker_index": job.worker_index,
            "workers": job.workers,
            "batch_size": job.batch_size,
            "seed": job.seed,
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the training service stopped",
        ),
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

fn parse_hash(text: &str) -> Result<StateHash, Response> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map(|()| StateHash(bytes))
        .map_err(|_| error(StatusCode::BAD_REQUEST, "a params hash is 64 hex digits"))
}

#[derive(Deserialize)]
struct WaitQuery {
    wait_ms: Option<u64>,
}

/// Waits up to `wait` for the trainer to hold params that `accept` takes.
async fn params_view(
    state: &ApiState,
    wait: Duration,
    accept: impl Fn(&ParamsView) -> bool,
) -> Result<Option<ParamsView>, Response> {
    let Some(mut params) = state.views.params.clone() else {
        return Err(not_external());
    };
    let found = tokio::time::timeout(wait, async {
        loop {
            if let Some(view) = params.borrow_and_update().as_ref().filter(|v| accept(v)) {
                return Some(view.clone());
            }
            if params.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    Ok(found.ok().flatten())
}

/// `GET /train/params/{hash}?wait_ms=T`: the params with this hash as raw little-endian f32
/// (waiting up to `T` ms, default 10 000, for the trainer to reach them).
async fn params(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Response {
    let hash = match parse_hash(&hash) {
        Ok(hash) => hash,
        Err(response) => return response,
    };
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(10_000).min(MAX_WAIT_MS));
    match params_view(&state, wait, |v| v.params_hash == hash).await {
        Ok(Some(view)) => {
            let mut bytes = Vec::with_capacity(view.values.len() * 4);
            for v in view.values.iter() {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::HeaderName::from_static("x-hashgrad-round"),
                        view.round.to_string(),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("this node's trainer does not hold params {hash}; fetch the job again"),
        ),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct GradientQuery {
    worker: u64,
    round: u64,
    params_hash: String,
    loss: f32,
}

/// `POST /train/gradient?worker=W&round=R&params_hash=H&loss=L`: the body is the gradient as
/// raw little-endian f32, laid out like the params.
async fn gradient(
    State(state): State<ApiState>,
    Query(query): Query<GradientQuery>,
    body: Bytes,
) -> Response {
    let params_hash = match parse_hash(&query.params_hash) {
        Ok(hash) => hash,
        Err(response) => return response,
    };
    if !body.len().is_multiple_of(4) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "a gradient is whole little-endian f32 values; {} bytes is not",
                body.len()
            ),
        );
    }
    let values = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let submission = GradientSubmission {
        worker: query.worker,
        round: query.round,
        params_hash,
        loss: query.loss,
        values,
    };
    match ask(&state, |reply| WorkerRequest::Submit {
        gradient: submission,
        reply,
    })
    .await
    {
        Ok(()) => Json(serde_json::json!({ "accepted": true })).into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    worker: u64,
    round: u64,
    accuracy: Option<f32>,
    loss: Option<f32>,
}

/// `POST /train/report` with `{"worker", "round", "accuracy", "loss"}`: shown in `/status`.
async fn report(State(state): State<ApiState>, body: Bytes) -> Response {
    let body: ReportBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("report body: {e}")),
    };
    let report = WorkerReport {
        worker: body.worker,
        round: body.round,
        accuracy: body.accuracy,
        loss: body.loss,
    };
    match ask(&state, |reply| WorkerRequest::Report { report, reply }).await {
        Ok(()) => Json(serde_json::json!({ "reported": true })).into_response(),
        Err(response) => response,
    }
}

/// The metadata a checkpoint carries.
pub(crate) fn checkpoint_metadata(view: &ParamsView) -> HashMap<String, String> {
    let o = &view.optimizer;
    HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("round".to_string(), view.round.to_string()),
        ("params_hash".to_string(), view.params_hash.to_string()),
        ("rule".to_string(), view.rule.clone()),
        (
            "optimizer".to_string(),
            format!(
                "{} lr={} momentum={} nesterov={} weight_decay={} clip_norm={}",
                o.kind, view.learning_rate, o.momentum, o.nesterov, o.weight_decay, o.clip_norm
            ),
        ),
    ])
}

/// `GET /train/checkpoint`: the params of the last committed round this node applied, as a
/// safetensors file.
async fn checkpoint_file(State(state): State<ApiState>) -> Response {
    let view = match params_view(&state, Duration::ZERO, |_| true).await {
        Ok(Some(view)) => view,
        Ok(None) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no params yet (an external model is not registered); retry",
            );
        }
        Err(response) => return response,
    };
    let built = tokio::task::spawn_blocking(move || {
        checkpoint::encode(&view.layout, &view.values, checkpoint_metadata(&view))
    })
    .await;
    match built {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "encoder failed"),
    }
}
