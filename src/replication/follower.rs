//! The follower: pulls the leader's change feed (long-poll) and applies it through its own
//! committer, which writes entries, derived rows and `last_seq` (the cursor) atomically.
//!
//! Every problem that could mean lost or wrong data stops applying for good, loudly, with
//! the reason in `/health` and the log: a checksum mismatch, a gap, an entry that differs from
//! one already applied, a leader behind this follower's log (diverged) or from an older term
//! (deposed). Transient problems (the leader down, a refused token, a timeout) are retried
//! with capped exponential backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::wire::FeedLine;
use super::{
    ADDRESS_HEADER, APPLIED_HEADER, NODE_HEADER, SINCE_HASH_HEADER, SINCE_TERM_HEADER, TERM_HEADER,
};
use crate::api::v3::hex;
use crate::error::Error;
use crate::store::Store;
use crate::store::committer::{
    CommitterClient, PreparedReplicatedEntry, ReplicatedEntry, now_ms, prepare_replicated,
};

/// Entries asked for per request.
const BATCH_ENTRIES: usize = 2_000;
/// Long-poll wait asked of the leader.
const LONG_POLL_MS: u64 = 10_000;
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a follower reports about itself (`/health`, `/replication/v1/status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowerStatus {
    /// The leader's base URL.
    pub leader_url: String,
    /// `starting`, `following`, `retrying`, `stopped` (permanently, see `last_error`) or
    /// `promoted`.
    pub state: String,
    /// The last problem.
    pub last_error: Option<String>,
    /// The last sequence applied (and flushed) here.
    pub applied_seq: u64,
    /// The leader's last sequence as last seen.
    pub leader_seq_seen: u64,
    /// The leader's term as last seen.
    pub leader_term_seen: u64,
    /// `leader_seq_seen - applied_seq`.
    pub lag_entries: u64,
    /// Age of the newest applied entry while behind, seconds; 0 when caught up.
    pub lag_seconds: f64,
    /// When the leader last answered, Unix ms.
    pub last_contact_ms: Option<i64>,
}

/// A running follower loop.
pub struct FollowerTask {
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
    /// Its status.
    pub status: Arc<Mutex<FollowerStatus>>,
}

impl FollowerTask {
    /// Stops the loop (waiting for a batch being applied) and returns the leader term seen.
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.join).await;
        self.status.lock().expect("status lock").leader_term_seen
    }
}

/// Everything the loop needs.
pub struct FollowerSettings {
    /// Leader base URL.
    pub leader_url: String,
    /// The replication token.
    pub token: String,
    /// This node's id.
    pub node_id: String,
    /// This node's URL as the leader should show it.
    pub advertise_url: Option<String>,
}

/// Starts following.
pub fn spawn(
    settings: FollowerSettings,
    store: Arc<Store>,
    committer: CommitterClient,
) -> FollowerTask {
    let (stop, stopped) = watch::channel(false);
    let status = Arc::new(Mutex::new(FollowerStatus {
        leader_url: settings.leader_url.clone(),
        state: "starting".to_string(),
        ..FollowerStatus::default()
    }));
    let join = tokio::spawn(run(
        settings,
        store,
        committer,
        Arc::clone(&status),
        stopped,
    ));
    FollowerTask { stop, join, status }
}

enum Step {
    Continue,
    Retry(String),
    Stop(String),
}

async fn run(
    settings: FollowerSettings,
    store: Arc<Store>,
    committer: CommitterClient,
    status: Arc<Mutex<FollowerStatus>>,
    mut stopped: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(LONG_POLL_MS) + Duration::from_secs(60))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            set_stopped(&status, format!("cannot build an HTTP client: {error}"));
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    tracing::info!(leader = %settings.leader_url, "following");
    loop {
        if *stopped.borrow() {
            break;
        }
        let step = tokio::select! {
            step = fetch_and_apply(&settings, &client, &store, &committer, &status) => step,
            _ = stopped.changed() => break,
        };
        match step {
            Step::Continue => {
                backoff = Duration::from_millis(100);
                status.lock().expect("status lock").state = "following".to_string();
            }
            Step::Retry(reason) => {
                tracing::warn!(leader = %settings.leader_url, reason, "replication read failed, retrying");
                {
                    let mut status = status.lock().expect("status lock");
                    status.state = "retrying".to_string();
                    status.last_error = Some(reason);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Step::Stop(reason) => {
                tracing::error!(leader = %settings.leader_url, reason, "replication stopped: nothing more is applied until this is resolved");
                set_stopped(&status, reason);
                return;
            }
        }
    }
    status.lock().expect("status lock").state = "stopped by request".to_string();
}

fn set_stopped(status: &Mutex<FollowerStatus>, reason: String) {
    let mut status = status.lock().expect("status lock");
    status.state = "stopped".to_string();
    status.last_error = Some(reason);
}

/// The local position: the last applied seq, the term, and the identity of the entry at it.
struct Position {
    since: u64,
    identity: Option<(u64, [u8; 32])>,
}

async fn fetch_and_apply(
    settings: &FollowerSettings,
    client: &reqwest::Client,
    store: &Arc<Store>,
    committer: &CommitterClient,
    status: &Mutex<FollowerStatus>,
) -> Step {
    let position_store = Arc::clone(store);
    let position = crate::api::blocking(move || {
        let last_seq = position_store.last_seq()?;
        let term = position_store.term()?;
        let at = position_store
            .log_entries(last_seq.saturating_sub(1), 1)?
            .into_iter()
            .next()
            .filter(|entry| entry.seq == last_seq);
        Ok((last_seq, term, at))
    })
    .await;
    let (mut applied, own_term, entry_at_since) = match position {
        Ok(position) => position,
        Err(error) => return Step::Retry(format!("reading the local position: {error}")),
    };
    let mut fetched = match fetch(
        settings,
        client,
        Position {
            since: applied,
            identity: entry_at_since.map(|entry| (entry.term, entry.content_sha256)),
        },
        applied,
        own_term,
        status,
    )
    .await
    {
        Ok(entries) => entries,
        Err(step) => return step,
    };
    loop {
        if fetched.is_empty() {
            update_lag(status, applied, None);
            return Step::Continue;
        }
        let newest_committed_at = fetched.last().map(|entry| entry.entry.committed_at_ms);
        let catching_up = fetched.len() >= BATCH_ENTRIES;
        let prepared = match prepare(fetched).await {
            Ok(prepared) => prepared,
            Err(step) => return step,
        };
        let last = prepared
            .last()
            .map(|entry| entry.entry().clone())
            .expect("not empty");
        if !catching_up {
            // At the tail, apply then ask again: the next request's `since` is the leader's
            // acknowledgement that this batch is durable here (semi-sync waits on it).
            return match apply(committer, prepared).await {
                Ok(new_last_seq) => {
                    update_lag(status, new_last_seq, newest_committed_at);
                    Step::Continue
                }
                Err(step) => step,
            };
        }
        // Catching up (a full batch: the leader has more): read the next batch while this one
        // is applied. `x-reportstore-applied` still tells the leader only what is durable.
        let next_position = Position {
            since: last.seq,
            identity: Some((last.term, last.content_sha256)),
        };
        let (applied_result, next) = tokio::join!(
            apply(committer, prepared),
            fetch(settings, client, next_position, applied, own_term, status)
        );
        match applied_result {
            Ok(new_last_seq) => {
                applied = new_last_seq;
                update_lag(status, new_last_seq, newest_committed_at);
            }
            Err(step) => return step,
        }
        fetched = match next {
            Ok(entries) => entries,
            Err(step) => return step,
        };
    }
}

/// Reads one batch of the feed after `position`, checking checksums and continuity.
async fn fetch(
    settings: &FollowerSettings,
    client: &reqwest::Client,
    position: Position,
    applied: u64,
    own_term: u64,
    status: &Mutex<FollowerStatus>,
) -> Result<Vec<ReplicatedEntry>, Step> {
    let since = position.since;
    let url = format!(
        "{}/replication/v1/changes?since={since}&limit={BATCH_ENTRIES}&feed=longpoll&wait_ms={LONG_POLL_MS}",
        settings.leader_url.trim_end_matches('/')
    );
    let mut request = client
        .get(url)
        .bearer_auth(&settings.token)
        .header(NODE_HEADER, &settings.node_id)
        .header(TERM_HEADER, own_term.to_string())
        .header(APPLIED_HEADER, applied.to_string());
    if let Some((term, hash)) = position.identity {
        request = request
            .header(SINCE_TERM_HEADER, term.to_string())
            .header(SINCE_HASH_HEADER, hex(&hash));
    }
    if let Some(address) = &settings.advertise_url {
        request = request.header(ADDRESS_HEADER, address);
    }
    let response = request
        .send()
        .await
        .map_err(|error| Step::Retry(format!("the leader did not answer: {error}")))?;
    let http_status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| Step::Retry(format!("reading the feed failed: {error}")))?;
    if http_status == reqwest::StatusCode::CONFLICT {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["errors"][0]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).to_string());
        if message.contains("diverged") || message.contains("beyond") {
            return Err(Step::Stop(format!(
                "the leader refused this follower's position: {message}"
            )));
        }
        return Err(Step::Retry(format!(
            "the leader refused the feed: {message}"
        )));
    }
    if !http_status.is_success() {
        return Err(Step::Retry(format!(
            "the leader answered {http_status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let mut entries: Vec<ReplicatedEntry> = Vec::new();
    let mut expected = since + 1;
    for line in body
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let line: FeedLine = serde_json::from_slice(line).map_err(|error| {
            Step::Stop(format!(
                "the feed sent a line that is not a feed entry: {error}"
            ))
        })?;
        if let FeedLine::Status { last_seq, term } = line {
            if term < own_term {
                return Err(Step::Stop(format!(
                    "the node at {} is at term {term}, below this follower's term {own_term}: it was deposed \
                     and cannot feed this follower",
                    settings.leader_url
                )));
            }
            let mut status = status.lock().expect("status lock");
            status.leader_seq_seen = last_seq;
            status.leader_term_seen = term;
            status.last_contact_ms = Some(now_ms());
            continue;
        }
        let Some(entry) = line
            .into_entry()
            .map_err(|error| Step::Stop(error.to_string()))?
        else {
            continue;
        };
        if entry.entry.seq != expected {
            return Err(Step::Stop(format!(
                "gap in the feed: expected seq {expected}, the leader sent {}",
                entry.entry.seq
            )));
        }
        expected += 1;
        entries.push(entry);
    }
    Ok(entries)
}

/// Checks and decodes a batch on the blocking pool, split over two threads (decompression
/// and JSON parsing are most of a follower's CPU).
async fn prepare(entries: Vec<ReplicatedEntry>) -> Result<Vec<PreparedReplicatedEntry>, Step> {
    let prepared = crate::api::blocking(move || {
        let middle = entries.len() / 2;
        let mut first = entries;
        let second = first.split_off(middle);
        let (first, second) = std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                second
                    .into_iter()
                    .map(prepare_replicated)
                    .collect::<crate::Result<Vec<_>>>()
            });
            let first = first
                .into_iter()
                .map(prepare_replicated)
                .collect::<crate::Result<Vec<_>>>();
            (first, worker.join())
        });
        let mut prepared = first?;
        prepared
            .extend(second.map_err(|_| Error::Internal("a prepare thread panicked".to_string()))??);
        Ok(prepared)
    })
    .await;
    prepared.map_err(|error| match error {
        Error::DataCorruption { .. } | Error::InvalidInput { .. } => Step::Stop(error.to_string()),
        other => Step::Retry(format!("preparing entries failed: {other}")),
    })
}

async fn apply(
    committer: &CommitterClient,
    prepared: Vec<PreparedReplicatedEntry>,
) -> Result<u64, Step> {
    committer
        .apply_replicated(prepared)
        .await
        .map_err(|error| match error {
            Error::Conflict(_) | Error::DataCorruption { .. } | Error::InvalidInput { .. } => {
                Step::Stop(error.to_string())
            }
            other => Step::Retry(format!("applying failed: {other}")),
        })
}

fn update_lag(status: &Mutex<FollowerStatus>, applied: u64, newest_committed_at: Option<i64>) {
    let mut status = status.lock().expect("status lock");
    status.applied_seq = applied;
    status.leader_seq_seen = status.leader_seq_seen.max(applied);
    status.lag_entries = status.leader_seq_seen.saturating_sub(applied);
    status.lag_seconds = match (status.lag_entries, newest_committed_at) {
        (0, _) | (_, None) => 0.0,
        (_, Some(at)) => (now_ms() - at).max(0) as f64 / 1000.0,
    };
}
