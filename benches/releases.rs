//! Release-summary benchmark (`cargo bench --bench releases`):
//!
//! 1. builds a store of `BENCH_RELEASE_REPORTS` (default 1,000,000) generated reports over about
//!    100,000 releases (each generated report's version gets one of eighteen suffixes, which
//!    turns the generator's ~7,200 releases into ~100,000), through the library: reports are
//!    prepared on two threads and written by the real committer (durable group commits);
//! 2. starts a real server on it and waits until its search index has caught up, so the
//!    measurement does not compete with indexing;
//! 3. streams all of `/v3/release` `BENCH_RELEASE_STREAMS` times: time to the last byte and the
//!    server's RSS sampled every 10 ms (memory must stay flat in the number of releases);
//! 4. `/v3/release?since=T` where T is "one hour ago": T is marked, then one hour of CPAN
//!    Testers traffic (`BENCH_HOUR_REPORTS`, default 1,700 ≈ 40,000 reports/day) is posted, and
//!    the query is timed `BENCH_SINCE_QUERIES` times (p50/p99).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reportstore::generator::ReportGenerator;
use reportstore::ingest::v3::{V3Validator, prepare_v3_report};
use reportstore::store::committer::{self, CommitterConfig, PreparedReport};
use reportstore::store::{Protocol, Store, StoreConfig};

mod common;

use common::{ServerProcess, env_number, percentile};

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn generated_document(
    generator: &mut ReportGenerator,
    testers: &[reportstore::generator::Tester],
    index: usize,
) -> Vec<u8> {
    let mut document = generator.next_report().to_v3_document(testers);
    let version = document["distribution"]["version"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    document["distribution"]["version"] =
        serde_json::Value::from(format!("{version}.{}", index % 18));
    document.as_object_mut().expect("object").remove("id");
    serde_json::to_vec(&document).expect("serialises")
}

fn build_store(data_dir: &std::path::Path, count: usize) -> Duration {
    let started = Instant::now();
    let store = Arc::new(
        Store::open(&data_dir.join("store"), &StoreConfig::default()).expect("open store"),
    );
    let (client, committer_thread) =
        committer::spawn(Arc::clone(&store), CommitterConfig::default()).expect("committer");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<PreparedReport>(4096);
    let next = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for worker in 0..2u64 {
        let sender = sender.clone();
        let next = Arc::clone(&next);
        producers.push(std::thread::spawn(move || {
            let validator = V3Validator::new().expect("schema");
            let mut generator = ReportGenerator::new(1000 + worker);
            let testers = generator.testers().to_vec();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                if index >= count {
                    return;
                }
                let body = generated_document(&mut generator, &testers, index);
                let prepared = prepare_v3_report(
                    &validator,
                    &body,
                    None,
                    Protocol::V3,
                    time::OffsetDateTime::now_utc(),
                )
                .expect("generated reports are valid");
                if sender.blocking_send(prepared).is_err() {
                    return;
                }
            }
        }));
    }
    drop(sender);
    runtime.block_on(async {
        let mut in_flight = tokio::task::JoinSet::new();
        while let Some(prepared) = receiver.recv().await {
            let client = client.clone();
            in_flight.spawn(async move { client.put_report(prepared).await });
            while in_flight.len() >= 512 {
                in_flight
                    .join_next()
                    .await
                    .expect("a task")
                    .expect("joined")
                    .expect("stored");
            }
        }
        while let Some(result) = in_flight.join_next().await {
            result.expect("joined").expect("stored");
        }
    });
    for producer in producers {
        producer.join().unwrap();
    }
    client.stop_blocking();
    drop(client);
    committer_thread.join().unwrap();
    started.elapsed()
}

fn main() {
    if !common::invoked_as_bench() {
        return;
    }
    let count = env_number("BENCH_RELEASE_REPORTS", 1_000_000);
    let streams = env_number("BENCH_RELEASE_STREAMS", 5);
    let hour_reports = env_number("BENCH_HOUR_REPORTS", 1_700);
    let since_queries = env_number("BENCH_SINCE_QUERIES", 200);
    let data_dir = common::bench_directory("reportstore-releases-bench");
    std::fs::create_dir_all(&data_dir).unwrap();

    let build_time = build_store(&data_dir, count);
    println!(
        "built a store of {count} reports in {:.1} s ({:.0} reports/s, committer + 2 prepare threads)",
        build_time.as_secs_f64(),
        count as f64 / build_time.as_secs_f64()
    );

    // Opening a store of a million reports takes a while.
    let server = ServerProcess::start(&data_dir, &[], Duration::from_secs(300));
    let base = server.base_url.clone();
    let pid = server.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        loop {
            let health: serde_json::Value = client.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
            if health["index"]["lag_entries"].as_u64() == Some(0) {
                break;
            }
            if started.elapsed() > Duration::from_secs(3600) {
                println!("index still catching up after an hour; measuring anyway");
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("server up, index caught up after {:.1} s", started.elapsed().as_secs_f64());

        let rss_before = rss_bytes(pid);
        for round in 0..streams {
            let peak = Arc::new(AtomicU64::new(0));
            let sampling = Arc::new(AtomicBool::new(true));
            let sampler = {
                let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
                std::thread::spawn(move || {
                    while sampling.load(Ordering::Relaxed) {
                        peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            };
            let started = Instant::now();
            let mut response = client.get(format!("{base}/v3/release")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let mut bytes = 0usize;
            let mut releases = 0usize;
            while let Some(chunk) = response.chunk().await.unwrap() {
                bytes += chunk.len();
                releases += chunk.iter().filter(|byte| **byte == b'{').count();
            }
            let elapsed = started.elapsed();
            sampling.store(false, Ordering::Relaxed);
            sampler.join().unwrap();
            println!(
                "stream all of /v3/release #{round}: {releases} releases, {:.1} MB in {:.2} s; server RSS {:.0} MiB before, {:.0} MiB peak during",
                bytes as f64 / 1e6,
                elapsed.as_secs_f64(),
                rss_before as f64 / 1048576.0,
                peak.load(Ordering::Relaxed) as f64 / 1048576.0
            );
        }

        // "One hour ago": mark T, then one hour of real traffic arrives.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let since = reportstore::ingest::format_timestamp(time::OffsetDateTime::now_utc());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut generator = ReportGenerator::new(77);
        let testers = generator.testers().to_vec();
        for index in 0..hour_reports {
            let body = generated_document(&mut generator, &testers, index);
            let response = client
                .post(format!("{base}/v3/report"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
        // The hour's reports were posted in a burst; in real traffic they arrive over an hour
        // and the indexer keeps up with them, so measure once it has.
        loop {
            let health: serde_json::Value = client.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
            if health["index"]["lag_entries"].as_u64() == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut latencies = Vec::with_capacity(since_queries);
        let mut changed = 0;
        for _ in 0..since_queries {
            let started = Instant::now();
            let body = client.get(format!("{base}/v3/release?since={since}")).send().await.unwrap().bytes().await.unwrap();
            latencies.push(started.elapsed());
            changed = body.iter().filter(|byte| **byte == b'{').count();
        }
        let mut slowest: Vec<(usize, Duration)> = latencies.iter().copied().enumerate().collect();
        slowest.sort_by_key(|(_, latency)| std::cmp::Reverse(*latency));
        println!(
            "slowest since queries (query number, ms): {:?}",
            slowest
                .iter()
                .take(5)
                .map(|(index, latency)| (*index, (latency.as_secs_f64() * 1e4).round() / 10.0))
                .collect::<Vec<_>>()
        );
        latencies.sort();
        println!(
            "/v3/release?since=<one hour ago> ({changed} releases changed by {hour_reports} reports): p50 {:.2} ms  p99 {:.2} ms over {since_queries} queries",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    });
    server.stop();
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
