//! The HTTP API: the router, its shared state, limits and middleware.
//!
//! Handlers do no disk or CPU-heavy work on the async runtime: parsing, validation,
//! compression and sled reads go through [`blocking`]; writes go to the committer's queue.
//!
//! Routes:
//! * legacy Metabase, under `/api/v1/`, `/beta/` and the bare root (`metabase`);
//! * CPAN Testers v3 and the collector's `/v1/report/{uuid}` (`v3`);
//! * full-text search, `GET /v3/search` (`search`);
//! * `/health` (`health`).

pub mod health;
pub mod metabase;
pub mod problem;
pub mod releases;
pub mod search;
pub mod v3;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::{Error, Result};
use crate::ingest::auth::CredentialCache;
use crate::ingest::v3::V3Validator;
use crate::store::Store;
use crate::store::committer::CommitterClient;
use problem::ApiError;

/// Explicit limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body (decompressed), bytes. Real reports exceed 10 MB.
    pub max_body_bytes: usize,
    /// Ingest requests being parsed and compressed at once; beyond it clients get 503.
    pub max_inflight_ingest: usize,
    /// Argon2 verifications running at once (each costs tens of ms of CPU).
    pub max_concurrent_verifications: usize,
    /// Whole-request deadline.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 32 * 1024 * 1024,
            max_inflight_ingest: 256,
            max_concurrent_verifications: 4,
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The sled store (reads only; the committer writes).
    pub store: Arc<Store>,
    /// The committer's queue.
    pub committer: CommitterClient,
    /// The full-text search index (read side; the indexer thread writes).
    pub search: crate::index::SearchIndex,
    /// The compiled v3 schema.
    pub v3_validator: Arc<V3Validator>,
    /// Recently verified Metabase credentials.
    pub credentials: Arc<CredentialCache>,
    /// Limits in force.
    pub limits: Limits,
    /// When this process started.
    pub started_at: Instant,
    /// Renders the Prometheus metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Leader, follower or fenced.
    pub role: Arc<crate::replication::RoleState>,
    /// Replication settings, followers, the follower loop.
    pub replication: Arc<crate::replication::ReplicationShared>,
    ingest_permits: Arc<Semaphore>,
    verification_permits: Arc<Semaphore>,
}

impl AppState {
    /// Builds the state over an opened store and a running committer.
    pub fn new(
        store: Arc<Store>,
        committer: CommitterClient,
        search: crate::index::SearchIndex,
        limits: Limits,
        role: Arc<crate::replication::RoleState>,
        replication: Arc<crate::replication::ReplicationShared>,
    ) -> Result<AppState> {
        Ok(AppState {
            store,
            committer,
            search,
            v3_validator: Arc::new(V3Validator::new()?),
            credentials: Arc::new(CredentialCache::default()),
            ingest_permits: Arc::new(Semaphore::new(limits.max_inflight_ingest.max(1))),
            verification_permits: Arc::new(Semaphore::new(
                limits.max_concurrent_verifications.max(1),
            )),
            limits,
            started_at: Instant::now(),
            metrics: crate::metrics::install(),
            role,
            replication,
        })
    }

    /// A slot for one ingest request, or 503 when too many are in flight.
    pub(crate) fn ingest_permit(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.ingest_permits)
            .try_acquire_owned()
            .map_err(|_| Error::Unavailable {
                message: format!(
                    "too many reports in flight (limit {}); retry shortly",
                    self.limits.max_inflight_ingest
                ),
                retry_after_secs: 1,
            })
    }

    /// Waits for a slot to run an Argon2 verification.
    pub(crate) async fn verification_permit(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.verification_permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("verification semaphore closed".to_string()))
    }
}

/// Runs CPU or disk work off the async runtime.
pub async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal(format!("blocking task failed: {error}")))?
}

/// Reads a whole request body, refusing more than `limit` bytes. A `Content-Length` above the
/// limit is refused before anything is read; a body cut short is a 400.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Error::PayloadTooLarge { limit_bytes: limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            Error::PayloadTooLarge { limit_bytes: limit }
        } else {
            Error::invalid(
                format!("request body could not be read completely: {error}"),
                "",
            )
        }
    })
}

/// Reads and discards a request body (up to `limit` bytes) without keeping it.
///
/// Answering before the body is read makes the server close the connection while a client
/// that does not use `Expect: 100-continue` (HTTP::Tiny) is still writing; the client may then
/// see a connection reset instead of the answer. Draining costs bandwidth, not memory.
pub async fn discard_body(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    while seen <= limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len();
                }
            }
            Some(Err(_)) | None => return,
        }
    }
}

/// Counts every answer by status code (`reportstore_http_responses_total{status}`).
async fn count_responses(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    metrics::counter!(
        "reportstore_http_responses_total",
        "status" => status_label(response.status())
    )
    .increment(1);
    response
}

/// A static label for a status code, so counting allocates nothing.
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        code if code < 300 => "2xx",
        code if code < 400 => "3xx",
        code if code < 500 => "4xx",
        _ => "5xx",
    }
}

/// The full router with middleware.
pub fn router(state: AppState) -> Router {
    let request_timeout = state.limits.request_timeout;
    let legacy = metabase::routes();
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/v3/report", post(v3::post_report))
        .route("/v3/report/{id}", get(v3::get_report))
        .route("/v3/search", get(search::search))
        .route("/v1/report/{id}", post(v3::post_collector_report))
        .route("/v3/release", get(releases::all_releases))
        .route("/v3/release/dist/{dist}", get(releases::dist_releases))
        .route(
            "/v3/release/dist/{dist}/{version}",
            get(releases::one_release),
        )
        .route(
            "/v3/release/author/{author}",
            get(releases::author_releases),
        )
        .route("/v3/summary", get(releases::all_summaries))
        .route("/v3/summary/{dist}", get(releases::dist_summaries))
        .route(
            "/v3/summary/{dist}/{version}",
            get(releases::release_summaries),
        )
        .route("/v3/stats", get(releases::stats))
        .route("/tail/log.txt", get(releases::tail_log))
        .route(
            "/replication/v1/changes",
            get(crate::replication::leader::changes),
        )
        .route(
            "/replication/v1/status",
            get(crate::replication::leader::status),
        )
        .route(
            "/replication/v1/digest",
            get(crate::replication::leader::digest),
        )
        .route(
            "/replication/v1/fence",
            post(crate::replication::leader::fence),
        )
        .route(
            "/replication/v1/promote",
            post(crate::replication::leader::promote),
        )
        .nest("/api/v1", legacy.clone())
        .nest("/beta", legacy.clone())
        .merge(legacy)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        // tower-http logs every 5xx at error level by default. A 503 is back-pressure (a full
        // queue, a write sent to a follower), and under overload that is thousands of lines a
        // second; 500s are logged with their cause where they happen (`problem.rs`). Answers
        // are counted by status in `/metrics` instead.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .layer(axum::middleware::from_fn(count_responses))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError(Error::NotFound(format!(
        "no route for {method} {}",
        uri.path()
    )))
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut response = ApiError(Error::invalid(
        format!("method {method} is not allowed on {}", uri.path()),
        "",
    ))
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    ApiError(Error::Internal("handler panicked".to_string())).into_response()
}

/// A JSON response with exactly `Content-Type: application/json`.
pub(crate) fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}
