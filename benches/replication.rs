//! Replication benchmark with real processes on 127.0.0.1 (`cargo bench --bench replication`):
//!
//! 1. catch-up: a leader is loaded with `BENCH_CATCHUP_REPORTS` generated v3 reports
//!    (default 1,000,000; 32 clients), then a fresh follower starts and the time until it holds
//!    the leader's whole log gives its catch-up rate, next to the leader's own ingest rate;
//! 2. lag: an open-loop 1,000 reports/s stream for `BENCH_RATE_SECS` (default 20 s); each
//!    201 carries the report's seq (`x-reportstore-seq`), a sampler polls the follower's
//!    `last_seq` every 2 ms, and lag = first time the follower holds the seq - time of the 201;
//! 3. the ingest cost of `--sync-replicas 1`: the same closed-loop load (`BENCH_SYNC_REPORTS`,
//!    default 20,000) against the leader without, then with, semi-synchronous acknowledgement.
//!
//! Everything (leader, follower, their indexers, the load generator) shares this machine's
//! cores, so the figures are a floor for separate machines.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reportstore::generator::ReportGenerator;

const TOKEN: &str = "bench-token";

/// 503 answers (backpressure) seen by the load generator.
static REFUSALS: AtomicUsize = AtomicUsize::new(0);

async fn wait_for_index(client: &reqwest::Client, base: &str) {
    loop {
        let health: serde_json::Value = match client.get(format!("{base}/health")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if health["index"]["lag_entries"].as_u64() == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

mod common;

use common::{env_number, percentile};

/// A node of the cluster under test (see `common`).
type Node = common::ServerProcess;

/// Starts a node that shares the benchmark's replication token.
fn start_node(data_dir: &Path, extra: &[&str]) -> Node {
    let mut arguments = vec!["--replication-token", TOKEN];
    arguments.extend_from_slice(extra);
    Node::start(data_dir, &arguments, Duration::from_secs(120))
}

async fn last_seq(client: &reqwest::Client, base: &str) -> u64 {
    let Ok(response) = client
        .get(format!("{base}/replication/v1/status"))
        .send()
        .await
    else {
        return 0;
    };
    response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|status| status["last_seq"].as_u64())
        .unwrap_or(0)
}

/// Posts a report; a 503 (explicit backpressure) is retried after its Retry-After, as a real
/// client would, and counted.
async fn post(client: &reqwest::Client, base: &str, body: &Arc<Vec<u8>>) -> u64 {
    let mut attempts = 0;
    let response = loop {
        let response = client
            .post(format!("{base}/v3/report"))
            .header("content-type", "application/json")
            .body(body.as_ref().clone())
            .send()
            .await
            .expect("post failed");
        if response.status() != 503 || attempts >= 20 {
            break response;
        }
        attempts += 1;
        REFUSALS.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let status = response.status();
    assert_eq!(status, 201, "{}", response.text().await.unwrap_or_default());
    response
        .headers()
        .get("x-reportstore-seq")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
        .expect("201 carries x-reportstore-seq")
}

async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    bodies: Arc<Vec<Arc<Vec<u8>>>>,
    clients: usize,
) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, base, bodies, next) = (
            client.clone(),
            base.to_string(),
            Arc::clone(&bodies),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else { break };
                post(&client, &base, body).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn bodies(generator: &mut ReportGenerator, count: usize) -> Arc<Vec<Arc<Vec<u8>>>> {
    let testers = generator.testers().to_vec();
    Arc::new(
        (0..count)
            .map(|_| {
                Arc::new(
                    serde_json::to_vec(&generator.next_report().to_v3_document(&testers)).unwrap(),
                )
            })
            .collect(),
    )
}

fn main() {
    if !common::invoked_as_bench() {
        return;
    }
    let catchup_reports = env_number("BENCH_CATCHUP_REPORTS", 1_000_000);
    let rate_secs = env_number("BENCH_RATE_SECS", 20);
    let sync_reports = env_number("BENCH_SYNC_REPORTS", 20_000);
    let clients = env_number("BENCH_CLIENTS", 32);
    let root = common::bench_directory("reportstore-replication-bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(clients * 2)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut generator = ReportGenerator::new(2026);

    // 1. Load the leader, then time a fresh follower's catch-up.
    let leader = start_node(&root.join("leader"), &[]);
    let leader_url = leader.base_url.clone();
    let mut loaded = 0;
    let mut ingest_time = Duration::ZERO;
    while loaded < catchup_reports {
        let chunk = (catchup_reports - loaded).min(50_000);
        let chunk_bodies = bodies(&mut generator, chunk);
        ingest_time += runtime.block_on(closed_loop(&client, &leader_url, chunk_bodies, clients));
        loaded += chunk;
    }
    let leader_rate = catchup_reports as f64 / ingest_time.as_secs_f64().max(1e-9);
    println!(
        "leader ingest: {catchup_reports} reports in {:.1} s = {leader_rate:.0} reports/s",
        ingest_time.as_secs_f64()
    );
    let target = runtime.block_on(last_seq(&client, &leader_url));
    let started = Instant::now();
    let follower = start_node(&root.join("follower"), &["--follow", &leader_url]);
    let follower_url = follower.base_url.clone();
    runtime.block_on(async {
        while last_seq(&client, &follower_url).await < target {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let catchup = started.elapsed();
    println!(
        "fresh follower catch-up: {target} entries in {:.1} s = {:.0} reports/s ({:.2}x the leader's ingest rate)",
        catchup.as_secs_f64(),
        target as f64 / catchup.as_secs_f64(),
        (target as f64 / catchup.as_secs_f64()) / leader_rate
    );

    // Both indexes catch up first: the lag phase measures replication, not a backlog of indexing.
    runtime.block_on(async {
        wait_for_index(&client, &leader_url).await;
        wait_for_index(&client, &follower_url).await;
    });
    REFUSALS.store(0, Ordering::Relaxed);

    // 2. Follower lag at 1,000 reports/s.
    let rate = 1000usize;
    let stream = bodies(&mut generator, rate * rate_secs);
    let lags = runtime.block_on(async {
        let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (client, url, samples, sampling) = (
                client.clone(),
                follower_url.clone(),
                Arc::clone(&samples),
                Arc::clone(&sampling),
            );
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    let seq = last_seq(&client, &url).await;
                    samples.lock().unwrap().push((Instant::now(), seq));
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (index, body) in stream.iter().enumerate() {
            tokio::time::sleep_until((started + interval * index as u32).into()).await;
            let (client, url, body) = (client.clone(), leader_url.clone(), Arc::clone(body));
            tasks.push(tokio::spawn(async move {
                let seq = post(&client, &url, &body).await;
                (Instant::now(), seq)
            }));
        }
        let mut acknowledged = Vec::new();
        for task in tasks {
            acknowledged.push(task.await.unwrap());
        }
        let last = acknowledged.iter().map(|(_, seq)| *seq).max().unwrap_or(0);
        while last_seq(&client, &follower_url).await < last {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        sampling.store(false, Ordering::Relaxed);
        sampler.await.unwrap();
        let samples = samples.lock().unwrap().clone();
        let mut lags: Vec<Duration> = acknowledged
            .iter()
            .map(|(acknowledged_at, seq)| {
                let reached = samples
                    .iter()
                    .find(|(_, applied)| applied >= seq)
                    .map_or(*acknowledged_at, |(at, _)| *at);
                reached.saturating_duration_since(*acknowledged_at)
            })
            .collect();
        lags.sort();
        lags
    });
    println!(
        "follower lag at {rate} reports/s over {rate_secs} s: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (sampling every 2 ms)",
        percentile(&lags, 0.5).as_secs_f64() * 1e3,
        percentile(&lags, 0.99).as_secs_f64() * 1e3,
        lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "503 refusals (retried) during the lag phase: {}",
        REFUSALS.load(Ordering::Relaxed)
    );

    // 3. The cost of --sync-replicas 1.
    let without = bodies(&mut generator, sync_reports);
    let elapsed = runtime.block_on(closed_loop(&client, &leader_url, without, clients));
    let rate_without = sync_reports as f64 / elapsed.as_secs_f64();
    leader.stop();
    let leader = start_node(&root.join("leader"), &["--sync-replicas", "1"]);
    let leader_url = leader.base_url.clone();
    follower.stop();
    let follower = start_node(&root.join("follower"), &["--follow", &leader_url]);
    runtime.block_on(async {
        // Semi-sync needs the follower registered with the leader before the load starts.
        loop {
            let status: serde_json::Value = match client
                .get(format!("{leader_url}/replication/v1/status"))
                .send()
                .await
            {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if status["followers"]
                .as_array()
                .is_some_and(|followers| !followers.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let with = bodies(&mut generator, sync_reports);
    let elapsed = runtime.block_on(closed_loop(&client, &leader_url, with, clients));
    let rate_with = sync_reports as f64 / elapsed.as_secs_f64();
    println!(
        "ingest with a follower attached, {clients} clients: {rate_without:.0} reports/s without, {rate_with:.0} reports/s with --sync-replicas 1 ({:.0} % of it)",
        rate_with * 100.0 / rate_without
    );
    follower.stop();
    leader.stop();
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
}
