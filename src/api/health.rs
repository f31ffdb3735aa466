//! `GET /health`: what an operator or a load balancer needs at a glance.
//!
//! 200 while the node can take writes; 503 when the committer has stopped (shutdown) so a load
//! balancer drains it. The body always says why.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    let fenced = matches!(
        state.role.current(),
        crate::replication::Role::Fenced { .. }
    );
    let accepting_writes = !state.committer.is_closed() && !fenced;
    let status = if fenced {
        "fenced"
    } else if accepting_writes {
        "ok"
    } else {
        "shutting_down"
    };
    let body = json!({
        "status": status,
        "role": state.role.current(),
        "following": state.replication.follower_status(),
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

/// `GET /metrics`: Prometheus text. State gauges are read now; counters and histograms were
/// recorded as things happened.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let durable_seq = *state.committer.durable_seq().borrow();
    let (search_index, index_store) = (state.search.clone(), state.store.clone());
    let (last_seq, size_on_disk, logical_bytes, index_status) = blocking(move || {
        Ok((
            store.last_seq()?,
            store.size_on_disk()?,
            store.logical_bytes()?,
            search_index.status(&index_store, durable_seq)?,
        ))
    })
    .await?;
    metrics::gauge!("reportstore_last_seq").set(last_seq as f64);
    metrics::gauge!("reportstore_durable_seq").set(durable_seq as f64);
    metrics::gauge!("reportstore_ingest_queue_length").set(state.committer.queue_len() as f64);
    metrics::gauge!("reportstore_ingest_queue_depth").set(state.committer.queue_depth() as f64);
    metrics::gauge!("reportstore_store_bytes_on_disk").set(size_on_disk as f64);
    metrics::gauge!("reportstore_store_logical_bytes").set(logical_bytes as f64);
    metrics::gauge!("reportstore_index_indexed_seq").set(index_status.indexed_seq as f64);
    metrics::gauge!("reportstore_index_lag_entries").set(index_status.lag_entries as f64);
    metrics::gauge!("reportstore_index_lag_seconds").set(index_status.lag_seconds);
    metrics::gauge!("reportstore_index_segments").set(index_status.segments as f64);
    metrics::gauge!("reportstore_process_resident_bytes")
        .set(crate::metrics::resident_bytes() as f64);
    metrics::gauge!("reportstore_process_peak_resident_bytes")
        .set(crate::metrics::peak_resident_bytes() as f64);
    for follower in state.replication.registry.snapshot() {
        let node = follower.node.clone();
        metrics::gauge!("reportstore_replication_follower_applied_seq", "node" => node.clone())
            .set(follower.applied_seq as f64);
        metrics::gauge!("reportstore_replication_follower_lag_entries", "node" => node.clone())
            .set(durable_seq.saturating_sub(follower.applied_seq) as f64);
        metrics::gauge!("reportstore_replication_follower_last_seen_seconds", "node" => node)
            .set(follower.last_seen.elapsed().as_secs_f64());
    }
    if let Some(following) = state.replication.follower_status() {
        metrics::gauge!("reportstore_replication_applied_seq").set(following.applied_seq as f64);
        metrics::gauge!("reportstore_replication_leader_seq_seen")
            .set(following.leader_seq_seen as f64);
        metrics::gauge!("reportstore_replication_lag_entries").set(following.lag_entries as f64);
        metrics::gauge!("reportstore_replication_lag_seconds").set(following.lag_seconds);
        metrics::gauge!("reportstore_replication_stopped").set(if following.state == "stopped" {
            1.0
        } else {
            0.0
        });
    }
    let text = state.metrics.render();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The OpenAPI description (`schema/openapi.json`), with the v3 report schema
/// (`schema/v3-report.schema.json`) inlined as `components.schemas.Report`.
pub const OPENAPI_DESCRIPTION: &str = include_str!("../../schema/openapi.json");

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        let mut document: serde_json::Value = serde_json::from_str(OPENAPI_DESCRIPTION)
            .expect("schema/openapi.json is JSON (checked by tests)");
        let report_schema: serde_json::Value =
            serde_json::from_str(crate::ingest::v3::V3_REPORT_SCHEMA)
                .expect("schema/v3-report.schema.json is JSON (checked at startup)");
        document["components"]["schemas"]["Report"] = report_schema;
        serde_json::to_vec(&document).expect("a JSON value serialises")
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
        .into_response()
}
