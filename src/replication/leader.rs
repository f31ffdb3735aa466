//! The leader's side: the change feed, the registry of followers (for status and
//! semi-synchronous acknowledgement), digests for verification, and the fence, promote and
//! status endpoints.
//!
//! A follower reports its progress with every feed request: `since` is the last sequence it
//! has durably applied (it asks for more only after its committer flushed). With long-polling
//! the next request follows each applied batch at once, so the leader learns within one round
//! trip, which is what `--sync-replicas` waits on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::wire::{FeedLine, parse_hex32};
use super::{
    ADDRESS_HEADER, APPLIED_HEADER, NODE_HEADER, Role, SINCE_HASH_HEADER, SINCE_TERM_HEADER,
    TERM_HEADER, constant_time_equal,
};
use crate::api::problem::ApiError;
use crate::api::releases::QueryParameters;
use crate::api::{AppState, blocking, json_response};
use crate::error::{Error, Result};

/// Most entries in one feed response.
pub const MAX_FEED_ENTRIES: usize = 10_000;
/// Entries in one feed response when the follower does not say.
pub const DEFAULT_FEED_ENTRIES: usize = 1_000;
/// A feed response stops growing past this many bytes of values.
pub const MAX_FEED_BYTES: usize = 16 * 1024 * 1024;
/// Longest long-poll wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// What the leader knows of one follower.
#[derive(Debug, Clone)]
pub struct FollowerProgress {
    /// The follower's node id.
    pub node: String,
    /// Its advertised URL, when it sent one.
    pub address: Option<String>,
    /// The last sequence it has durably applied.
    pub applied_seq: u64,
    /// Its term.
    pub term: u64,
    /// When it last asked for changes.
    pub last_seen: Instant,
}

/// The followers a leader has heard from.
pub struct FollowerRegistry {
    followers: Mutex<HashMap<String, FollowerProgress>>,
    changed: watch::Sender<u64>,
}

impl Default for FollowerRegistry {
    fn default() -> Self {
        FollowerRegistry {
            followers: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl FollowerRegistry {
    /// Records a follower's progress (applied sequence numbers only go up).
    pub fn record(&self, node: &str, address: Option<String>, applied_seq: u64, term: u64) {
        let mut followers = self.followers.lock().expect("registry lock");
        let progress = followers
            .entry(node.to_string())
            .or_insert_with(|| FollowerProgress {
                node: node.to_string(),
                address: None,
                applied_seq,
                term,
                last_seen: Instant::now(),
            });
        progress.applied_seq = progress.applied_seq.max(applied_seq);
        progress.term = term;
        progress.last_seen = Instant::now();
        if address.is_some() {
            progress.address = address;
        }
        drop(followers);
        self.changed.send_modify(|version| *version += 1);
    }

    /// Followers that have durably applied `seq`.
    pub fn replicas_at_least(&self, seq: u64) -> usize {
        let followers = self.followers.lock().expect("registry lock");
        followers
            .values()
            .filter(|progress| progress.applied_seq >= seq)
            .count()
    }

    /// Waits until `count` followers have applied `seq`, or `timeout` passes.
    pub async fn wait_for_replicas(&self, seq: u64, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changed.subscribe();
        loop {
            if self.replicas_at_least(seq) >= count {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.replicas_at_least(seq) >= count,
            }
        }
    }

    /// A snapshot of every follower.
    pub fn snapshot(&self) -> Vec<FollowerProgress> {
        let followers = self.followers.lock().expect("registry lock");
        let mut list: Vec<FollowerProgress> = followers.values().cloned().collect();
        list.sort_by(|a, b| a.node.cmp(&b.node));
        list
    }
}

/// Checks `Authorization: Bearer <replication token>`.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let Some(expected) = state.replication.config.token.as_deref() else {
        return Err(Error::Unauthorized(
            "replication is not enabled on this node: start it with --replication-token"
                .to_string(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Error::Unauthorized("replication requires Authorization: Bearer <token>".to_string())
        })?;
    if !constant_time_equal(presented.trim().as_bytes(), expected.as_bytes()) {
        return Err(Error::Unauthorized("wrong replication token".to_string()));
    }
    Ok(())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

fn conflict(message: String, last_seq: u64, term: u64) -> Response {
    json_response(
        StatusCode::CONFLICT,
        json!({
            "errors": [{ "message": message, "path": "/since" }],
            "last_seq": last_seq,
            "term": term,
        }),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FeedMode {
    Normal,
    LongPoll,
    Continuous,
}

/// `GET /replication/v1/changes?since=SEQ&limit=N&feed=normal|longpoll|continuous&wait_ms=&heartbeat_ms=`
///
/// NDJSON: one entry per line (values exactly as stored, with a checksum), then a status line
/// with the leader's `last_seq` and term; in `continuous` mode status lines are also the
/// heartbeat. 401 without the token; 409 when `since` is beyond the leader's log, when the
/// follower's entry at `since` differs from the leader's (diverged), or when this node is not
/// (or no longer) the leader.
pub async fn changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let parameters = QueryParameters::parse(query.as_deref())?;
    let number = |name: &str, default: u64| -> Result<u64> {
        match parameters.single(name)? {
            None => Ok(default),
            Some(text) => text.parse::<u64>().map_err(|_| {
                Error::invalid(
                    format!("{name} must be a non-negative integer, not {text:?}"),
                    format!("/{name}"),
                )
            }),
        }
    };
    let since = number("since", 0)?;
    let limit = (number("limit", DEFAULT_FEED_ENTRIES as u64)? as usize).clamp(1, MAX_FEED_ENTRIES);
    let wait = Duration::from_millis(number("wait_ms", 30_000)?).min(MAX_WAIT);
    let heartbeat = Duration::from_millis(number("heartbeat_ms", 5_000)?.clamp(100, 60_000));
    let mode = match parameters.single("feed")? {
        None | Some("normal") => FeedMode::Normal,
        Some("longpoll") => FeedMode::LongPoll,
        Some("continuous") => FeedMode::Continuous,
        Some(other) => {
            return Err(Error::invalid(
                format!("feed must be normal, longpoll or continuous, not {other:?}"),
                "/feed",
            )
            .into());
        }
    };

    let store = state.store.clone();
    let own_term = blocking(move || store.term()).await?;
    let mut durable = state.committer.durable_seq();
    let durable_seq = *durable.borrow();
    match state.role.current() {
        Role::Leader => {}
        Role::Follower { leader_url } => {
            return Ok(conflict(
                format!("this node is a follower; follow the leader at {leader_url}"),
                durable_seq,
                own_term,
            ));
        }
        Role::Fenced { reason } => {
            return Ok(conflict(
                format!("this node is fenced: {reason}"),
                durable_seq,
                own_term,
            ));
        }
    }
    let follower_term = header_text(&headers, TERM_HEADER)
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    if follower_term > own_term {
        state.role.fence(follower_term, own_term, "a follower");
        return Ok(conflict(
            format!(
                "the follower is at term {follower_term}, above this node's {own_term}: this node was deposed"
            ),
            durable_seq,
            own_term,
        ));
    }
    if since > durable_seq {
        return Ok(conflict(
            format!(
                "since {since} is beyond this leader's last sequence {durable_seq}: the follower holds entries \
                 the leader does not have (its log diverged)"
            ),
            durable_seq,
            own_term,
        ));
    }
    if since > 0
        && let (Some(since_term), Some(since_hash)) = (
            header_text(&headers, SINCE_TERM_HEADER),
            header_text(&headers, SINCE_HASH_HEADER),
        )
    {
        let store = state.store.clone();
        let ours = blocking(move || store.log_entries(since - 1, 1)).await?;
        let matches = ours.first().is_some_and(|entry| {
            entry.seq == since
                && since_term.parse::<u64>().ok() == Some(entry.term)
                && parse_hex32(&since_hash) == Some(entry.content_sha256)
        });
        if !matches {
            return Ok(conflict(
                format!(
                    "the follower's entry at seq {since} differs from the leader's: its log diverged. Move its \
                     data directory aside and start an empty follower, which bootstraps from seq 0"
                ),
                durable_seq,
                own_term,
            ));
        }
    }
    if let Some(node) = header_text(&headers, NODE_HEADER) {
        // A follower reading ahead (catching up) says what it has durably applied; otherwise
        // `since` is its acknowledgement.
        let applied = header_text(&headers, APPLIED_HEADER)
            .and_then(|text| text.parse::<u64>().ok())
            .map_or(since, |applied| applied.min(since));
        state.replication.registry.record(
            &node,
            header_text(&headers, ADDRESS_HEADER),
            applied,
            follower_term,
        );
    }

    if mode == FeedMode::Continuous {
        return Ok(continuous_feed(state, since, limit, heartbeat, own_term));
    }
    if mode == FeedMode::LongPoll && durable_seq <= since {
        let _ = tokio::time::timeout(wait, durable.wait_for(|seq| *seq > since)).await;
    }
    let durable_seq = *durable.borrow();
    let store = state.store.clone();
    let entries = blocking(move || store.replicated_entries(since, limit, MAX_FEED_BYTES)).await?;
    let mut body = Vec::with_capacity(
        entries
            .iter()
            .map(|entry| entry.value.len() * 4 / 3 + 256)
            .sum::<usize>()
            + 64,
    );
    let mut last_sent = since;
    for entry in entries
        .iter()
        .filter(|entry| entry.entry.seq <= durable_seq)
    {
        body.extend_from_slice(&FeedLine::from_entry(entry).to_line());
        last_sent = entry.entry.seq;
    }
    body.extend_from_slice(
        &FeedLine::Status {
            last_seq: durable_seq,
            term: own_term,
        }
        .to_line(),
    );
    tracing::debug!(since, last_sent, durable_seq, "feed response");
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn continuous_feed(
    state: AppState,
    since: u64,
    limit: usize,
    heartbeat: Duration,
    term: u64,
) -> Response {
    let (sender, receiver) = mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut durable = state.committer.durable_seq();
        let mut position = since;
        loop {
            let durable_seq = *durable.borrow_and_update();
            if durable_seq > position {
                let store = state.store.clone();
                let entries = match blocking(move || {
                    store.replicated_entries(position, limit, MAX_FEED_BYTES)
                })
                .await
                {
                    Ok(entries) => entries,
                    Err(error) => {
                        tracing::error!(%error, "continuous feed read failed");
                        return;
                    }
                };
                let mut chunk = Vec::new();
                for entry in entries
                    .iter()
                    .filter(|entry| entry.entry.seq <= durable_seq)
                {
                    chunk.extend_from_slice(&FeedLine::from_entry(entry).to_line());
                    position = entry.entry.seq;
                }
                if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                    return;
                }
                continue;
            }
            let status = FeedLine::Status {
                last_seq: durable_seq,
                term,
            }
            .to_line();
            if sender.send(Ok(Bytes::from(status))).await.is_err() {
                return;
            }
            let _ = tokio::time::timeout(heartbeat, durable.changed()).await;
        }
    });
    let stream = ReceiverStream(receiver);
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

struct ReceiverStream(mpsc::Receiver<std::result::Result<Bytes, std::io::Error>>);

impl futures_core::Stream for ReceiverStream {
    type Item = std::result::Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(context)
    }
}

/// `GET /replication/v1/status`: this node's role, position and (on a leader) its followers
/// with their applied sequence and lag in entries and seconds.
pub async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let followers = state.replication.registry.snapshot();
    let durable_seq = *state.committer.durable_seq().borrow();
    let (term, lag_times) = {
        let applied: Vec<u64> = followers
            .iter()
            .map(|follower| follower.applied_seq)
            .collect();
        blocking(move || {
            let term = store.term()?;
            let mut times = Vec::with_capacity(applied.len());
            for applied_seq in applied {
                // The lag in seconds is the age of the oldest entry the follower lacks.
                let oldest_missing = if applied_seq < durable_seq {
                    store
                        .log_entries(applied_seq, 1)?
                        .first()
                        .map(|entry| entry.committed_at_ms)
                } else {
                    None
                };
                times.push(oldest_missing);
            }
            Ok((term, times))
        })
        .await?
    };
    let now_ms = crate::store::committer::now_ms();
    let followers: Vec<serde_json::Value> = followers
        .iter()
        .zip(lag_times)
        .map(|(follower, oldest_missing)| {
            json!({
                "node": follower.node,
                "address": follower.address,
                "applied_seq": follower.applied_seq,
                "term": follower.term,
                "lag_entries": durable_seq.saturating_sub(follower.applied_seq),
                "lag_seconds": oldest_missing.map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0),
                "last_seen_secs_ago": follower.last_seen.elapsed().as_secs_f64(),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "role": state.role.current(),
            "term": term,
            "last_seq": durable_seq,
            "sync_replicas": state.replication.config.sync_replicas,
            "followers": followers,
            "following": state.replication.follower_status(),
        }),
    ))
}

/// Digest of the log entries `from..=to`, in blocks of `block` entries: SHA-256 over each
/// entry's binary encoding (seq, term, op, id, content hash, commit time).
pub fn log_digests(
    store: &crate::store::Store,
    from: u64,
    to: u64,
    block: u64,
) -> Result<Vec<(u64, u64, String)>> {
    let mut blocks = Vec::new();
    let mut start = from.max(1);
    while start <= to {
        let end = (start + block - 1).min(to);
        let mut digest = Sha256::new();
        let mut after = start - 1;
        while after < end {
            let entries = store.log_entries(after, ((end - after) as usize).min(4096))?;
            if entries.is_empty() {
                break;
            }
            for entry in entries.iter().take_while(|entry| entry.seq <= end) {
                digest.update(entry.encode());
                after = entry.seq;
            }
            if entries.last().is_some_and(|entry| entry.seq > end) {
                break;
            }
        }
        blocks.push((start, end, crate::api::v3::hex(&digest.finalize())));
        start = end + 1;
    }
    Ok(blocks)
}

/// `GET /replication/v1/digest?from=&to=&block=`: block digests of the log, for `reportstore
/// verify`. Token required.
pub async fn digest(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let parameters = QueryParameters::parse(query.as_deref())?;
    let durable_seq = *state.committer.durable_seq().borrow();
    let number = |name: &str, default: u64| -> Result<u64> {
        match parameters.single(name)? {
            None => Ok(default),
            Some(text) => text.parse::<u64>().map_err(|_| {
                Error::invalid(
                    format!("{name} must be a non-negative integer"),
                    format!("/{name}"),
                )
            }),
        }
    };
    let from = number("from", 1)?.max(1);
    let to = number("to", durable_seq)?.min(durable_seq);
    let block = number("block", 10_000)?.max(1);
    if to >= from && (to - from) / block > 100_000 {
        return Err(Error::invalid("too many blocks requested (at most 100000)", "/block").into());
    }
    let store = state.store.clone();
    let (term, blocks) =
        blocking(move || Ok((store.term()?, log_digests(&store, from, to, block)?))).await?;
    let blocks: Vec<serde_json::Value> = blocks
        .into_iter()
        .map(|(from, to, sha256)| json!({ "from": from, "to": to, "sha256": sha256 }))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "last_seq": durable_seq, "term": term, "blocks": blocks }),
    ))
}

/// `POST /replication/v1/fence` `{"term": N}`: a promoted node tells a deposed leader. Token
/// required. A leader below that term fences itself.
pub async fn fence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body = crate::api::read_body(body, &headers, 64 * 1024).await?;
    let request: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|error| Error::invalid(format!("body is not JSON: {error}"), "/"))?;
    let newer_term = request["term"]
        .as_u64()
        .ok_or_else(|| Error::invalid("term must be a non-negative integer", "/term"))?;
    let store = state.store.clone();
    let own_term = blocking(move || store.term()).await?;
    if newer_term > own_term {
        state.role.fence(newer_term, own_term, "the promoted node");
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "role": state.role.current(), "term": own_term }),
    ))
}

/// `POST /replication/v1/promote`: turns this follower into the leader under a new term.
/// Token required. Stops following, raises the term above every term seen, then tells the old
/// leader (best effort) so it fences itself even before it learns otherwise.
pub async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Role::Follower { leader_url } = state.role.current() else {
        return Err(Error::Conflict("only a follower can be promoted".to_string()).into());
    };
    let leader_term_seen = state.replication.stop_following().await;
    let store = state.store.clone();
    let own_term = blocking(move || store.term()).await?;
    let new_term = own_term.max(leader_term_seen) + 1;
    state.committer.set_term(new_term).await?;
    state.role.set(Role::Leader);
    let last_seq = *state.committer.durable_seq().borrow();
    tracing::warn!(new_term, last_seq, old_leader = %leader_url, "promoted to leader");
    if let Some(token) = state.replication.config.token.clone() {
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build();
            let Ok(client) = client else { return };
            let url = format!("{}/replication/v1/fence", leader_url.trim_end_matches('/'));
            if let Err(error) = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "term": new_term }))
                .send()
                .await
            {
                tracing::info!(%error, "the old leader could not be told to fence itself (it may be down)");
            }
        });
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "role": state.role.current(), "term": new_term, "last_seq": last_seq }),
    ))
}
