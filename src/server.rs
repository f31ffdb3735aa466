//! Wiring one node together and running it until a shutdown signal.
//!
//! Shutdown order matters for durability: stop accepting connections and let requests in
//! flight finish (bounded by a grace period); drop the router so the last committer client
//! goes away; the committer finishes its group and flushes; the indexer commits what it
//! indexed and waits for its merges; then sled is flushed once more and dropped. A request that got its 201 was already on disk before any of this.

use axum::serve::ListenerExt as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::api::{self, AppState};
use crate::config::ServeConfig;
use crate::error::{Error, Result};
use crate::index::{IndexerHandle, SearchIndex};
use crate::replication::follower::{self, FollowerSettings};
use crate::replication::{ReplicationShared, Role, RoleState};
use crate::store::Store;
use crate::store::committer::{self, CommitterClient};

/// An opened store with its committer and its indexer running.
pub struct Node {
    /// The store.
    pub store: Arc<Store>,
    /// The committer's queue.
    pub committer: CommitterClient,
    /// The full-text search index, fed by the indexer thread.
    pub search: SearchIndex,
    committer_thread: JoinHandle<()>,
    indexer: IndexerHandle,
}

impl Node {
    /// Opens the store and the search index, and starts the committer and the indexer.
    pub fn open(config: &ServeConfig) -> Result<Node> {
        let store = Arc::new(Store::open(&config.store_dir(), &config.store_config())?);
        tracing::info!(
            path = %config.store_dir().display(),
            existing = store.was_recovered(),
            last_seq = store.last_seq()?,
            "store opened"
        );
        let (search, indexer) =
            SearchIndex::open(&config.data_dir.join("index"), config.indexer_config())?;
        let (committer, committer_thread) =
            committer::spawn(Arc::clone(&store), config.committer_config())?;
        let indexer = indexer.spawn(Arc::clone(&store), committer.durable_seq())?;
        Ok(Node {
            store,
            committer,
            search,
            committer_thread,
            indexer,
        })
    }

    /// Stops the committer after the writes already queued, then flushes the store. Clients
    /// still holding a `CommitterClient` get 503 for later writes.
    pub fn close(self) -> Result<()> {
        let Node {
            store,
            committer,
            search,
            committer_thread,
            indexer,
        } = self;
        committer.stop_blocking();
        drop(committer);
        committer_thread
            .join()
            .map_err(|_| Error::Internal("the committer thread panicked".to_string()))?;
        // After the committer: the index commits what it has, then waits for its merges.
        let indexer_stopped = indexer.stop();
        drop(search);
        store.flush()?;
        indexer_stopped
    }
}

/// Turns transparent huge pages off for the process, and makes glibc's allocator give large
/// blocks back to the system. Call once, first thing.
///
/// Huge pages: mimalloc asks for them on its arenas (`MADV_HUGEPAGE`), and it gives freed
/// pages back to the system after a few milliseconds. Each first touch of such a page again
/// zeroes a whole 2 MiB. When 1,000 reports/s of ingest started after a quiet spell, the
/// server spent 40 % of its CPU in the kernel's `clear_page` under mimalloc's page faults,
/// requests queued until the 256 ingest permits were gone, and clients got 503 for up to
/// 20 s. Databases (Redis, MongoDB) turn THP off for the same reason; the TLB misses of 4 KiB
/// pages did not show up in any of our benchmarks.
///
/// The `reportstore` binary allocates with mimalloc, so this governs only what C code (zstd)
/// takes from glibc, and programs that embed the library with the system allocator.
///
/// The trap: glibc raises its mmap threshold to the size of each large block freed, so after
/// the first Argon2 verification (19 MiB of working memory) such blocks come from the
/// per-thread heaps instead, and every blocking-pool thread that ran one keeps its heap. Under
/// a burst of first-time Metabase logins the server held 2.9 GB of freed memory. A fixed
/// threshold of 16 MiB keeps Argon2's blocks (and huge request bodies) on mmap, returned on
/// free, and leaves the blocks of everyday work (tantivy's 1 MiB arena pages, zstd contexts)
/// in the heap as before: an mmap and munmap for each of those would cost page faults.
pub fn configure_allocator() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and sets a process flag.
        let disabled = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if disabled != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "could not turn transparent huge pages off"
            );
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD_BYTES: libc::c_int = 16 * 1024 * 1024;
        // SAFETY: mallopt takes plain integers; called before other threads allocate.
        let changed = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        if changed != 1 {
            tracing::warn!("could not set the allocator's mmap threshold");
        }
    }
}

/// Runs a node on `config.listen` until `shutdown` resolves, then shuts down in order.
/// `on_listening` gets the bound address (useful with port 0).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    let node = Node::open(&config)?;
    let replication_config = config.replication_config();
    let role = Arc::new(RoleState::new(match &replication_config.follow {
        Some(leader_url) => Role::Follower {
            leader_url: leader_url.clone(),
        },
        None => Role::Leader,
    }));
    let replication = Arc::new(ReplicationShared::new(replication_config.clone()));
    let state = AppState::new(
        Arc::clone(&node.store),
        node.committer.clone(),
        node.search.clone(),
        config.limits(),
        Arc::clone(&role),
        Arc::clone(&replication),
    )?;
    if let Some(leader_url) = &replication_config.follow {
        let token = replication_config.token.clone().ok_or_else(|| {
            Error::invalid(
                "a follower needs --replication-token (the leader's feed token)",
                "",
            )
        })?;
        let task = follower::spawn(
            FollowerSettings {
                leader_url: leader_url.clone(),
                token,
                node_id: node_id(&config.data_dir)?,
                advertise_url: replication_config.advertise_url.clone(),
            },
            Arc::clone(&node.store),
            node.committer.clone(),
        );
        replication.set_follower(task).await;
    }
    let peer_watch = (!replication_config.peers.is_empty()).then(|| {
        tokio::spawn(watch_peers(
            replication_config.peers.clone(),
            Arc::clone(&role),
            Arc::clone(&node.store),
        ))
    });
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Io {
            path: format!("listen address {}", config.listen).into(),
            source,
        })?;
    let local_address = listener.local_addr().map_err(|source| Error::Io {
        path: "listen socket".into(),
        source,
    })?;
    tracing::info!(listen = %local_address, data_dir = %config.data_dir.display(), "reportstore listening");
    if let Some(ready_file) = &config.ready_file {
        // Write then rename, so a reader never sees a half-written address.
        let partial = ready_file.with_extension("partial");
        std::fs::write(&partial, local_address.to_string())
            .and_then(|()| std::fs::rename(&partial, ready_file))
            .map_err(|source| Error::Io {
                path: ready_file.clone(),
                source,
            })?;
    }
    on_listening(local_address);

    let (signalled_sender, signalled) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled_sender.send(());
        tracing::info!("shutdown requested, finishing requests in flight");
    };
    // Without TCP_NODELAY, the last small segment of a streamed answer waits for the ACK of
    // the previous one, which the client delays by up to 40 ms: a 3 ms `/v3/release?since=`
    // read then takes 45 ms now and then.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let server = tokio::spawn(async move { server.await });
    let mut server = server;
    tokio::select! {
        result = &mut server => {
            result
                .map_err(|error| Error::Internal(format!("server task failed: {error}")))?
                .map_err(|source| Error::Io { path: "http server".into(), source })?;
        }
        _ = async {
            let _ = signalled.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over, closing remaining connections");
            server.abort();
        }
    }
    if let Some(peer_watch) = peer_watch {
        peer_watch.abort();
    }
    // Stop applying the leader's feed before the committer stops.
    replication.stop_following().await;
    let close = tokio::task::spawn_blocking(move || node.close());
    close
        .await
        .map_err(|error| Error::Internal(format!("shutdown task failed: {error}")))??;
    tracing::info!("reportstore stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// This node's id, kept in `DATA_DIR/node_id` (created on first start).
pub fn node_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            std::fs::write(&path, &id).map_err(|source| Error::Io { path, source })?;
            Ok(id)
        }
    }
}

/// Asks the peers for their role and term at start and every few seconds; a leader that finds
/// a peer leading under a higher term fences itself (it was deposed while away).
async fn watch_peers(peers: Vec<String>, role: Arc<RoleState>, store: Arc<crate::store::Store>) {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return;
    };
    loop {
        if role.current() == Role::Leader {
            let own_term = {
                let store = Arc::clone(&store);
                api::blocking(move || store.term()).await.unwrap_or(0)
            };
            for peer in &peers {
                let url = format!("{}/replication/v1/status", peer.trim_end_matches('/'));
                let Ok(response) = client.get(url).send().await else {
                    continue;
                };
                let Ok(status) = response.json::<serde_json::Value>().await else {
                    continue;
                };
                let peer_term = status["term"].as_u64().unwrap_or(0);
                if status["role"]["role"] == "leader" && peer_term > own_term {
                    role.fence(peer_term, own_term, peer);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn configuring_the_allocator_turns_huge_pages_off() {
        super::configure_allocator();
        // SAFETY: PR_GET_THP_DISABLE reads a process flag.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(
            disabled, 1,
            "transparent huge pages are off for the process"
        );
    }
}
