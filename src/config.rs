//! Command-line and environment configuration of `reportstore serve`.
//!
//! Every setting is a flag with an environment variable (`REPORTSTORE_*`); flags win. Defaults
//! run a working server with nothing else installed: data in `./reportstore-data`, listening on
//! 127.0.0.1:8080.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::Limits;
use crate::store::StoreConfig;
use crate::store::committer::CommitterConfig;

/// Settings of one server process.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Directory holding the store (created if missing).
    #[arg(long, env = "REPORTSTORE_DATA_DIR", default_value = "reportstore-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "REPORTSTORE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes (real reports exceed 10 MB).
    #[arg(long, env = "REPORTSTORE_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Writes that may wait for the committer; beyond it clients get 503 + Retry-After.
    #[arg(long, env = "REPORTSTORE_QUEUE_DEPTH", default_value_t = 1024)]
    pub queue_depth: usize,
    /// Ingest requests parsed and compressed at once; beyond it clients get 503.
    #[arg(long, env = "REPORTSTORE_MAX_INFLIGHT_INGEST", default_value_t = 256)]
    pub max_inflight_ingest: usize,
    /// sled page cache in MiB (sled measures on-disk page size; RSS is a multiple of it).
    #[arg(long, env = "REPORTSTORE_CACHE_CAPACITY_MIB", default_value_t = 256)]
    pub cache_capacity_mib: u64,
    /// Whole-request deadline in seconds.
    #[arg(long, env = "REPORTSTORE_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    pub request_timeout_secs: u64,
    /// Seconds to let requests in flight finish after SIGTERM before closing connections.
    #[arg(long, env = "REPORTSTORE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Once listening, write the bound address (`host:port`) to this file. With
    /// `--listen 127.0.0.1:0` this is how scripts and tests learn the port.
    #[arg(long, env = "REPORTSTORE_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    /// Run as a follower of the leader at this base URL (e.g. http://10.0.0.1:8080).
    #[arg(long, env = "REPORTSTORE_FOLLOW")]
    pub follow: Option<String>,
    /// Shared secret of the change feed, on leader and followers alike. Without it the feed
    /// is closed (401).
    #[arg(long, env = "REPORTSTORE_REPLICATION_TOKEN", hide_env_values = true)]
    pub replication_token: Option<String>,
    /// A 201 waits until this many followers durably applied the report (0: do not wait).
    #[arg(long, env = "REPORTSTORE_SYNC_REPLICAS", default_value_t = 0)]
    pub sync_replicas: usize,
    /// How long a 201 may wait for --sync-replicas followers before the answer is 503.
    #[arg(long, env = "REPORTSTORE_SYNC_TIMEOUT_MS", default_value_t = 5000)]
    pub sync_timeout_ms: u64,
    /// Other nodes (comma-separated base URLs). A leader asks them for a newer term at start
    /// and every few seconds, and fences itself if one was promoted above it.
    #[arg(long, env = "REPORTSTORE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// This node's base URL as other nodes reach it (shown in the leader's follower list).
    #[arg(long, env = "REPORTSTORE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Nice value of the search indexer (0-19). Higher favours ingest over index freshness
    /// when the CPU is saturated; 0 gives indexing the same priority as ingest.
    #[arg(long, env = "REPORTSTORE_INDEXER_NICE", default_value_t = crate::index::DEFAULT_INDEXER_NICE,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub indexer_nice: i32,
}

impl ServeConfig {
    /// A configuration with the defaults above, for tests and embedding.
    pub fn with_data_dir(data_dir: PathBuf, listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            data_dir,
            listen,
            max_body_bytes: 32 * 1024 * 1024,
            queue_depth: 1024,
            max_inflight_ingest: 256,
            cache_capacity_mib: 256,
            request_timeout_secs: 120,
            shutdown_grace_secs: 30,
            ready_file: None,
            follow: None,
            replication_token: None,
            sync_replicas: 0,
            sync_timeout_ms: 5000,
            peers: Vec::new(),
            advertise_url: None,
            indexer_nice: crate::index::DEFAULT_INDEXER_NICE,
        }
    }

    /// The store settings.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            cache_capacity_bytes: self.cache_capacity_mib * 1024 * 1024,
        }
    }

    /// The search indexer settings.
    pub fn indexer_config(&self) -> crate::index::IndexerConfig {
        crate::index::IndexerConfig {
            nice: self.indexer_nice,
            ..crate::index::IndexerConfig::default()
        }
    }

    /// The committer settings.
    pub fn committer_config(&self) -> CommitterConfig {
        CommitterConfig {
            queue_depth: self.queue_depth,
            ..CommitterConfig::default()
        }
    }

    /// The HTTP limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_inflight_ingest: self.max_inflight_ingest,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            ..Limits::default()
        }
    }

    /// The replication settings.
    pub fn replication_config(&self) -> crate::replication::ReplicationConfig {
        crate::replication::ReplicationConfig {
            token: self
                .replication_token
                .clone()
                .filter(|token| !token.is_empty()),
            follow: self.follow.clone(),
            advertise_url: self.advertise_url.clone(),
            sync_replicas: self.sync_replicas,
            sync_timeout: Duration::from_millis(self.sync_timeout_ms),
            peers: self
                .peers
                .iter()
                .filter(|peer| !peer.is_empty())
                .cloned()
                .collect(),
        }
    }

    /// Where sled keeps its files.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }
}
