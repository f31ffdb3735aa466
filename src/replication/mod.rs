//! Replication: the change feed, followers, semi-synchronous acknowledgement, promotion with
//! fencing, and verification by digests.
//!
//! The replication log (`l` + seq in sled) is the spine. A leader serves it over HTTP
//! (`leader`): every entry with the values it names, byte for byte as stored, and a checksum.
//! A follower (`follower`) is the same binary started with `--follow URL`: it pulls the feed
//! (long-poll), checks each entry, and hands the batch to its own committer, which writes the
//! entries, their derived rows and `last_seq` (the follower's cursor) in one atomic batch. Its
//! own indexer tails its own log, so it serves every read and search.
//!
//! Terms fence deposed leaders: promotion raises the term; a node learns of a higher term from
//! a follower's request, a `fence` call from the promoted node, or its `--peers`, and then
//! refuses writes and feeds.

pub mod follower;
pub mod leader;
pub mod verify;
mod wire;

use std::sync::RwLock;

pub use wire::{FeedLine, entry_checksum};

use crate::error::Error;

/// Header carrying the sender's node id.
pub const NODE_HEADER: &str = "x-reportstore-node";
/// Header carrying the sender's term.
pub const TERM_HEADER: &str = "x-reportstore-term";
/// Header with the term of the follower's entry at `since` (divergence check).
pub const SINCE_TERM_HEADER: &str = "x-reportstore-since-term";
/// Header with the content hash (hex) of the follower's entry at `since`.
pub const SINCE_HASH_HEADER: &str = "x-reportstore-since-sha256";
/// Header with the last seq the follower has durably applied (its acknowledgement). Without
/// it, `since` counts as the acknowledgement.
pub const APPLIED_HEADER: &str = "x-reportstore-applied";
/// Header with the follower's own base URL, shown in the leader's status.
pub const ADDRESS_HEADER: &str = "x-reportstore-address";
/// Header naming the leader on refused writes.
pub const LEADER_HEADER: &str = "x-reportstore-leader";

/// What this node does now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Takes writes and serves the change feed.
    Leader,
    /// Applies a leader's feed; serves reads.
    Follower {
        /// The leader's base URL.
        leader_url: String,
    },
    /// A leader that learned of a newer term: refuses writes and feeds until restarted as a
    /// follower (`--follow`).
    Fenced {
        /// Why, and what to do.
        reason: String,
    },
}

/// The node's role, changed at runtime by promotion and fencing.
#[derive(Debug)]
pub struct RoleState {
    role: RwLock<Role>,
}

impl RoleState {
    /// Starts in `role`.
    pub fn new(role: Role) -> RoleState {
        RoleState {
            role: RwLock::new(role),
        }
    }

    /// The current role.
    pub fn current(&self) -> Role {
        self.role.read().expect("role lock").clone()
    }

    /// Replaces the role.
    pub fn set(&self, role: Role) {
        *self.role.write().expect("role lock") = role;
    }

    /// `Ok` on a leader; the refusal clients get everywhere else. A redirect would not help:
    /// HTTP::Tiny (the Metabase clients) never follows redirects for POST, so the answer is a
    /// 503 naming the leader, which a proxy or a retrying client can act on.
    pub fn ensure_leader(&self) -> Result<(), Error> {
        match self.current() {
            Role::Leader => Ok(()),
            Role::Follower { leader_url } => Err(Error::Unavailable {
                message: format!(
                    "this node is a read-only follower; send writes to the leader at {leader_url}"
                ),
                retry_after_secs: 5,
            }),
            Role::Fenced { reason } => Err(Error::Unavailable {
                message: format!("this node is fenced and takes no writes: {reason}"),
                retry_after_secs: 5,
            }),
        }
    }

    /// Fences a leader that learned of `newer_term` (no-op on followers or if already fenced).
    pub fn fence(&self, newer_term: u64, own_term: u64, source: &str) {
        let mut role = self.role.write().expect("role lock");
        if *role == Role::Leader {
            let reason = format!(
                "{source} is at term {newer_term}, above this node's term {own_term}: a follower was \
                 promoted. Restart this node with --follow <new leader URL> to rejoin"
            );
            tracing::error!(
                newer_term,
                own_term,
                source,
                "leader fenced by a newer term"
            );
            *role = Role::Fenced { reason };
        }
    }
}

/// Settings of replication.
#[derive(Debug, Clone, Default)]
pub struct ReplicationConfig {
    /// The shared secret followers present (`Authorization: Bearer`). None: the feed is closed.
    pub token: Option<String>,
    /// On a follower: the leader's base URL.
    pub follow: Option<String>,
    /// This node's base URL as others reach it (shown in the leader's status).
    pub advertise_url: Option<String>,
    /// A 201 waits until this many followers applied the report.
    pub sync_replicas: usize,
    /// How long a 201 may wait for them before the answer is 503.
    pub sync_timeout: std::time::Duration,
    /// Other nodes to ask for a higher term at start-up and periodically (fencing).
    pub peers: Vec<String>,
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter()
        .zip(b)
        .fold(0u8, |difference, (x, y)| difference | (x ^ y))
        == 0
}

/// Replication state shared by the handlers of one node.
pub struct ReplicationShared {
    /// Settings.
    pub config: ReplicationConfig,
    /// Followers this node (as leader) has heard from.
    pub registry: leader::FollowerRegistry,
    follower: tokio::sync::Mutex<Option<follower::FollowerTask>>,
    follower_status:
        std::sync::Mutex<Option<std::sync::Arc<std::sync::Mutex<follower::FollowerStatus>>>>,
}

impl ReplicationShared {
    /// Shared state with no follower loop yet.
    pub fn new(config: ReplicationConfig) -> ReplicationShared {
        ReplicationShared {
            config,
            registry: leader::FollowerRegistry::default(),
            follower: tokio::sync::Mutex::new(None),
            follower_status: std::sync::Mutex::new(None),
        }
    }

    /// Keeps the running follower loop (so promotion and shutdown can stop it).
    pub async fn set_follower(&self, task: follower::FollowerTask) {
        *self.follower_status.lock().expect("status lock") =
            Some(std::sync::Arc::clone(&task.status));
        *self.follower.lock().await = Some(task);
    }

    /// Stops the follower loop, if any; returns the leader term it last saw.
    pub async fn stop_following(&self) -> u64 {
        let task = self.follower.lock().await.take();
        match task {
            Some(task) => task.stop().await,
            None => 0,
        }
    }

    /// The follower loop's status, on a follower.
    pub fn follower_status(&self) -> Option<follower::FollowerStatus> {
        self.follower_status
            .lock()
            .expect("status lock")
            .as_ref()
            .map(|status| status.lock().expect("status lock").clone())
    }

    /// With `--sync-replicas K`: waits until K followers durably applied `seq`. A timeout is a
    /// refusal (503), never a false success: the report is on the leader, and a retry of the
    /// same submission answers once the followers have it.
    pub async fn await_replicas(&self, seq: u64) -> Result<(), Error> {
        let wanted = self.config.sync_replicas;
        if wanted == 0 {
            return Ok(());
        }
        if self
            .registry
            .wait_for_replicas(seq, wanted, self.config.sync_timeout)
            .await
        {
            return Ok(());
        }
        let have = self.registry.replicas_at_least(seq);
        Err(Error::Unavailable {
            message: format!(
                "the report is stored on the leader (seq {seq}) but only {have} of the {wanted} required followers \
                 confirmed it within {} ms; it is not acknowledged, retry the same submission",
                self.config.sync_timeout.as_millis()
            ),
            retry_after_secs: 1,
        })
    }
}
