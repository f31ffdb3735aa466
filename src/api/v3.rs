//! CPAN Testers API v3 report routes and the collector's `POST /v1/report/{uuid}`.
//!
//! A stored report never changes, so `GET /v3/report/{id}` is served with a strong `ETag`
//! and a year-long `Cache-Control: immutable`; `If-None-Match` gives 304.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use super::problem::ApiError;
use super::{AppState, blocking, discard_body, json_response, read_body};
use crate::error::Error;
use crate::ingest::v3::prepare_v3_report;
use crate::store::Protocol;
use crate::store::committer::PutReportOutcome;

/// `Cache-Control` of an immutable stored report.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

fn parse_report_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError(Error::invalid(
            format!("{text:?} is not a valid report id (a UUID)"),
            "/id",
        ))
    })
}

async fn store_v3(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    path_id: Option<Uuid>,
    protocol: Protocol,
) -> Result<(Uuid, PutReportOutcome), ApiError> {
    let received_at = time::OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let _permit = match state
        .role
        .ensure_leader()
        .and_then(|()| state.ingest_permit())
    {
        Ok(permit) => permit,
        Err(error) => {
            discard_body(body, state.limits.max_body_bytes).await;
            return Err(error.into());
        }
    };
    let body = read_body(body, &headers, state.limits.max_body_bytes).await?;
    let validator = state.v3_validator.clone();
    let store = state.store.clone();
    let prepared = blocking(move || {
        let prepared = prepare_v3_report(&validator, &body, path_id, protocol, received_at)?;
        store.warm_for_report(
            &prepared.id,
            &prepared.summary,
            prepared.fact_frame.is_some(),
        );
        Ok(prepared)
    })
    .await?;
    let id = prepared.id;
    let grade = prepared.summary.grade.clone();
    let outcome = state.committer.put_report(prepared).await?;
    let (PutReportOutcome::Stored { seq } | PutReportOutcome::AlreadyStored { seq }) = outcome;
    state.replication.await_replicas(seq).await?;
    match outcome {
        PutReportOutcome::Stored { seq } => {
            crate::metrics::report_stored(protocol.as_str(), &grade, started.elapsed());
            tracing::info!(%id, seq, protocol = protocol.as_str(), "report stored");
        }
        PutReportOutcome::AlreadyStored { seq } => {
            crate::metrics::report_duplicate(protocol.as_str());
            tracing::info!(%id, seq, protocol = protocol.as_str(), "report already stored");
        }
    }
    Ok((id, outcome))
}

/// Response header with the report's sequence number: a client can wait until a follower's
/// `last_seq` reaches it to read its own write there.
pub const SEQ_HEADER: &str = "x-reportstore-seq";

/// Adds [`SEQ_HEADER`] to a write's answer.
pub fn with_seq_header(mut response: Response, outcome: PutReportOutcome) -> Response {
    let (PutReportOutcome::Stored { seq } | PutReportOutcome::AlreadyStored { seq }) = outcome;
    response
        .headers_mut()
        .insert(SEQ_HEADER, HeaderValue::from(seq));
    response
}

fn outcome_status(outcome: PutReportOutcome) -> StatusCode {
    match outcome {
        PutReportOutcome::Stored { .. } => StatusCode::CREATED,
        PutReportOutcome::AlreadyStored { .. } => StatusCode::OK,
    }
}

/// `POST /v3/report`: 201 `{"id"}` for a new report, 200 for a resubmission, 409 for the same
/// id with other content.
pub async fn post_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (id, outcome) = store_v3(state, headers, body, None, Protocol::V3).await?;
    let mut response = json_response(
        outcome_status(outcome),
        json!({ "id": id.hyphenated().to_string() }),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/v3/report/{}", id.hyphenated())) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(with_seq_header(response, outcome))
}

/// `POST /v1/report/{uuid}`: the collector's put with a client-chosen id; answers `["<uuid>"]`.
pub async fn post_collector_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_report_id(&id)?;
    let (id, outcome) = store_v3(state, headers, body, Some(id), Protocol::Collector).await?;
    let response = json_response(
        outcome_status(outcome),
        json!([id.hyphenated().to_string()]),
    );
    Ok(with_seq_header(response, outcome))
}

/// `GET /v3/report/{id}`: the stored document.
pub async fn get_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_report_id(&id)?;
    let store = state.store.clone();
    let Some(stored) = blocking(move || store.report(&id)).await? else {
        // The v3 API's exact answer for an unknown id.
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            json!({ "errors": [{ "message": "Report ID not found", "path": "/id" }] }),
        ));
    };
    let etag = format!("\"{}\"", hex(&stored.record.content_sha256));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let cache_headers = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, IMMUTABLE_CACHE_CONTROL.to_string()),
    ];
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache_headers).into_response());
    }
    Ok((
        StatusCode::OK,
        cache_headers,
        [(header::CONTENT_TYPE, "application/json".to_string())],
        stored.document,
    )
        .into_response())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[(byte >> 4) as usize] as char);
        text.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    text
}
