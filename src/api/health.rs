//! `GET /health`: what an operator or a load balancer needs at a glance.
//!
//! 200 while the node can take writes; 503 when the committer has stopped (shutdown) so a load
//! balancer drains it. The body always says why.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::problem::ApiError;
use super::{AppState, blocking, json_response};

/// The health document.
pub async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let (last_seq, term, size_on_disk, opened_existing) = blocking(move || {
        Ok((
            store.last_seq()?,
            store.term()?,
            store.size_on_disk()?,
            store.was_recovered(),
        ))
    })
    .await?;
    let durable_seq = *state.committer.durable_seq().borrow();
    let (search_index, index_store) = (state.search.clone(), state.store.clone());
    let index_status = blocking(move || search_index.status(&index_store, durable_seq)).await?;
    let stats = state.committer.stats();
    let accepting_writes = !state.committer.is_closed();
    let status = if accepting_writes {
        "ok"
    } else {
        "shutting_down"
    };
    let body = json!({
        "status": status,
        "role": "leader",
        "term": term,
        "last_seq": last_seq,
        "durable_seq": durable_seq,
        "uptime_secs": state.started_at.elapsed().as_secs(),
        "ingest": {
            "queue_len": state.committer.queue_len(),
            "queue_depth": state.committer.queue_depth(),
            "groups_committed": stats.groups.load(Ordering::Relaxed),
            "entries_written": stats.entries_written.load(Ordering::Relaxed),
            "duplicates": stats.duplicates.load(Ordering::Relaxed),
            "failed_groups": stats.failed_groups.load(Ordering::Relaxed),
            "last_group_size": stats.last_group_size.load(Ordering::Relaxed),
            "last_flush_micros": stats.last_flush_micros.load(Ordering::Relaxed),
        },
        "index": index_status,
        "store": {
            "path": state.store.path().display().to_string(),
            "size_on_disk_bytes": size_on_disk,
            "opened_existing": opened_existing,
        },
    });
    let code = if accepting_writes {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(code, body))
}
