//! Durable-ingest benchmark against a real `reportstore serve` process on 127.0.0.1.
//!
//! `cargo bench --bench ingest` runs, with reports from the deterministic generator:
//! 1. throughput: v3 reports, then Metabase submissions, each from 32 concurrent clients;
//! 2. latency: an open-loop 1,000 reports/s stream (v3 and Metabase mixed as 1:1), time to 201;
//! 3. bytes on disk (the whole data directory) against the raw JSON sent, and the server's
//!    peak RSS (VmHWM).
//!
//! Sizes come from the environment: `BENCH_REPORTS` per throughput phase (default 20000),
//! `BENCH_RATE_SECS` (default 20), `BENCH_CLIENTS` (default 32), `BENCH_RATE` (default 1000).
//! Every 201 is a report fsync'd on disk: the server acknowledges only after `flush()`.
//! `BENCH_BREAKDOWN=1` adds the store's logical bytes per key prefix against sled's files.
//!
//! Other modes (`BENCH_MODE=`): `cpu` (per-stage CPU of preparing a report), `zstd` (frame size
//! by level and dictionary), `store` (the committer alone, no HTTP), `breakdown`
//! (`BENCH_STORE=<dir>`: the breakdown of a kept store), `sled` (bare sled's space for the
//! store's write patterns).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reportstore::generator::{ReportGenerator, metabase_register_body};

mod common;

use common::{env_number, percentile};

/// The server under test (`common::ServerProcess`), with what this benchmark reads of it.
type Server = common::ServerProcess;

impl Server {
    fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// Starts sampling the server's anonymous and file-backed resident memory every 20 ms.
    /// VmHWM alone mixes the two: tantivy's index and sled's files are read through the page
    /// cache and mmap, and those pages count as RSS but are not the heap.
    fn memory_sampler(&self) -> MemorySampler {
        let pid = self.child.id();
        let peaks = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let thread = {
            let (peaks, running) = (Arc::clone(&peaks), Arc::clone(&running));
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    for (index, field) in ["RssAnon:", "RssFile:"].iter().enumerate() {
                        let kib = status
                            .lines()
                            .find(|line| line.starts_with(field))
                            .and_then(|line| line.split_whitespace().nth(1))
                            .and_then(|kib| kib.parse::<usize>().ok())
                            .unwrap_or(0);
                        peaks[index].fetch_max(kib * 1024, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        MemorySampler {
            peaks,
            running,
            thread,
        }
    }

    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

struct MemorySampler {
    peaks: Arc<[AtomicUsize; 2]>,
    running: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl MemorySampler {
    /// Peak (anonymous, file-backed) resident bytes seen.
    fn finish(self) -> (usize, usize) {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.thread.join();
        (
            self.peaks[0].load(Ordering::Relaxed),
            self.peaks[1].load(Ordering::Relaxed),
        )
    }
}

/// User + system CPU seconds of a process (all its threads, dead ones included) from
/// `/proc/<pid>/stat`.
fn process_cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = fields.get(11..13).map_or(0.0, |pair| {
        pair.iter().filter_map(|f| f.parse::<f64>().ok()).sum()
    });
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}

/// CPU seconds of the server's live threads by thread name (threads that ended, such as
/// tantivy's indexing workers which every index commit replaces, are not in it).
fn thread_cpu_seconds(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let seconds = process_cpu_seconds(&path.join("stat").to_string_lossy());
        *by_name.entry(name.trim().to_string()).or_insert(0.0) += seconds;
    }
    by_name
}

/// `_sum` and `_count` of the committer's flush-time and group-size metrics.
async fn committer_metrics(client: &reqwest::Client, base: &str) -> [f64; 4] {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    [
        value("reportstore_committer_flush_seconds_sum"),
        value("reportstore_committer_flush_seconds_count"),
        value("reportstore_committer_group_size_sum"),
        value("reportstore_committer_group_size_count"),
    ]
}

/// Mean flush time and group size between two [`committer_metrics`] readings.
fn committer_line(before: [f64; 4], after: [f64; 4]) -> String {
    let groups = (after[1] - before[1]).max(1.0);
    format!(
        "   committer: {:.0} groups, mean flush {:.2} ms, mean group {:.1} writes",
        after[1] - before[1],
        (after[0] - before[0]) * 1e3 / groups,
        (after[2] - before[2]) / (after[3] - before[3]).max(1.0)
    )
}

/// CPU spent by the server and by this load generator during a phase, per report.
struct CpuMeter {
    server: f64,
    client: f64,
    threads: std::collections::BTreeMap<String, f64>,
}

impl CpuMeter {
    fn start(server: &Server) -> CpuMeter {
        CpuMeter {
            server: server.cpu_seconds(),
            client: process_cpu_seconds("/proc/self/stat"),
            threads: thread_cpu_seconds(server.child.id()),
        }
    }

    fn line(&self, server: &Server, reports: usize) -> String {
        let server_cpu = server.cpu_seconds() - self.server;
        let client_cpu = process_cpu_seconds("/proc/self/stat") - self.client;
        let per_report = |seconds: f64| seconds * 1e6 / reports as f64;
        let mut line = format!(
            "   CPU/report: server {:.0} us, load generator {:.0} us; server threads:",
            per_report(server_cpu),
            per_report(client_cpu)
        );
        let mut accounted = 0.0;
        for (name, seconds) in thread_cpu_seconds(server.child.id()) {
            let spent = seconds - self.threads.get(&name).copied().unwrap_or(0.0);
            accounted += spent;
            if per_report(spent) >= 1.0 {
                line.push_str(&format!(" {name} {:.0}", per_report(spent)));
            }
        }
        line.push_str(&format!(
            ", ended threads (tantivy workers) {:.0}",
            per_report(server_cpu - accounted).max(0.0)
        ));
        line
    }
}

fn directory_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let metadata = entry.metadata().unwrap();
        if metadata.is_dir() {
            total += directory_bytes(&entry.path());
        } else if entry.file_name() != "ready.addr" {
            total += metadata.len();
        }
    }
    total
}

#[derive(Clone)]
struct Prepared {
    url_path: &'static str,
    body: Arc<Vec<u8>>,
    authorization: Option<String>,
}

async fn send(client: &reqwest::Client, base: &str, request: &Prepared) -> Duration {
    let started = Instant::now();
    let mut builder = client
        .post(format!("{base}{}", request.url_path))
        .header("Content-Type", "application/octet-stream")
        .body(request.body.as_ref().clone());
    if let Some(authorization) = &request.authorization {
        builder = builder.header("Authorization", authorization);
    }
    let response = builder.send().await.expect("request failed");
    let status = response.status();
    assert!(
        status == 201,
        "unexpected status {status}: {}",
        response.text().await.unwrap_or_default()
    );
    started.elapsed()
}

async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    requests: Vec<Prepared>,
    clients: usize,
) -> (Duration, Vec<Duration>) {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = client.clone();
        let base = base.to_string();
        let requests = Arc::clone(&requests);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(index) else {
                    break;
                };
                latencies.push(send(&client, &base, request).await);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (elapsed, latencies)
}

async fn open_loop(
    client: &reqwest::Client,
    base: &str,
    requests: Vec<Prepared>,
    rate: usize,
) -> Vec<Duration> {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    for (index, request) in requests.into_iter().enumerate() {
        let due = started + interval * index as u32;
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        let base = base.to_string();
        // Latency is measured from the scheduled send time, so a stalled server cannot hide
        // its queueing delay (no coordinated omission).
        tasks.push(tokio::spawn(async move {
            send(&client, &base, &request).await;
            due.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort();
    latencies
}

fn report_line(name: &str, count: usize, elapsed: Duration, latencies: &[Duration]) {
    println!(
        "{name:<28} {count:>7} reports in {:>6.2} s = {:>7.0} reports/s   p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Prints, per key prefix, how many keys sled holds and their key and value bytes, against the
/// size of sled's files: where the bytes on disk go. Opens the (stopped) store directly.
fn print_store_breakdown(store_dir: &Path) {
    let files = directory_bytes(store_dir);
    // sled refuses to open a store with another segment size than it was created with.
    let segment_size = std::fs::read(store_dir.join("conf"))
        .ok()
        .and_then(|conf| {
            String::from_utf8_lossy(&conf)
                .lines()
                .find_map(|line| line.strip_prefix("segment_size: ")?.trim().parse().ok())
        })
        .unwrap_or(512 * 1024);
    let db = match sled::Config::new()
        .path(store_dir)
        .segment_size(segment_size)
        .open()
    {
        Ok(db) => db,
        Err(error) => {
            println!("breakdown: cannot open {}: {error}", store_dir.display());
            return;
        }
    };
    // prefix -> (keys, key bytes, value bytes)
    let mut rows: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for item in db.iter() {
        let (key, value) = item.expect("reading the store");
        let prefix = match key.first() {
            Some(b'm') => String::from_utf8_lossy(&key).into_owned(),
            Some(byte) => (*byte as char).to_string(),
            None => "(empty)".to_string(),
        };
        let row = rows.entry(prefix).or_default();
        row.0 += 1;
        row.1 += key.len() as u64;
        row.2 += value.len() as u64;
    }
    let (keys, key_bytes, value_bytes) = rows
        .values()
        .fold((0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
    println!("store breakdown (logical key+value bytes per prefix vs sled's files):");
    println!(
        "  {:<16} {:>9} {:>12} {:>13} {:>10}",
        "prefix", "keys", "key bytes", "value bytes", "B/key"
    );
    for (prefix, (count, kb, vb)) in &rows {
        println!(
            "  {prefix:<16} {count:>9} {kb:>12} {vb:>13} {:>10.1}",
            (kb + vb) as f64 / *count as f64
        );
    }
    println!(
        "  {:<16} {keys:>9} {key_bytes:>12} {value_bytes:>13}   = {} B logical",
        "total",
        key_bytes + value_bytes
    );
    println!(
        "  sled files before reopening: {files} B = {:.2} x logical; sled size_on_disk after reopening: {} B",
        files as f64 / (key_bytes + value_bytes).max(1) as f64,
        db.size_on_disk().unwrap_or(0)
    );
}

/// CPU time of the calling thread: microbenchmark timings that other processes on a shared
/// machine do not inflate (as long as they leave the caches alone).
fn thread_cpu_time() -> Duration {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut spec) };
    Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
}

/// `BENCH_MODE=cpu`: the ingest CPU path in process, without HTTP, sled or the committer:
/// `prepare_v3_report` and `parse_submission` + `prepare_submission` over generated reports,
/// single-threaded, so changes to parsing, hashing and compression can be compared directly.
fn cpu_microbenchmark(count: usize) {
    use reportstore::ingest::{metabase, v3};
    let mut generator = ReportGenerator::new(7);
    let testers = generator.testers().to_vec();
    let mut v3_bodies = Vec::with_capacity(count);
    let mut metabase_bodies = Vec::with_capacity(count);
    for _ in 0..count {
        let report = generator.next_report();
        v3_bodies.push(serde_json::to_vec(&report.to_v3_document(&testers)).unwrap());
        let report = generator.next_report();
        metabase_bodies.push(report.to_metabase_submission(&testers).into_bytes());
    }
    let validator = v3::V3Validator::new().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let reporter = metabase::Reporter {
        name: "Bench Tester".to_string(),
        email: "bench@example.org".to_string(),
    };
    for round in 0..2 {
        let started = thread_cpu_time();
        let mut frame_bytes = 0usize;
        for body in &v3_bodies {
            let prepared = v3::prepare_v3_report(
                &validator,
                body,
                None,
                reportstore::store::Protocol::V3,
                now,
            )
            .unwrap();
            frame_bytes += prepared.document_frame.len();
        }
        let v3_elapsed = thread_cpu_time() - started;
        let v3_raw: usize = v3_bodies.iter().map(Vec::len).sum();
        let started = thread_cpu_time();
        let (mut document_bytes, mut fact_bytes) = (0usize, 0usize);
        for body in &metabase_bodies {
            let submission = metabase::parse_submission(body, metabase::REPORT_FACT_TYPE).unwrap();
            let prepared =
                metabase::prepare_submission(&submission, Some(&reporter), body, now).unwrap();
            document_bytes += prepared.document_frame.len();
            fact_bytes += prepared.fact_frame.as_ref().map_or(0, Vec::len);
        }
        let metabase_elapsed = thread_cpu_time() - started;
        let metabase_raw: usize = metabase_bodies.iter().map(Vec::len).sum();
        println!(
            "round {round}: v3 {:.1} us/report (document frame {:.1} % of body); metabase {:.1} us/report (document frame {:.1} % + fact frame {:.1} % of body)",
            v3_elapsed.as_secs_f64() * 1e6 / count as f64,
            frame_bytes as f64 * 100.0 / v3_raw as f64,
            metabase_elapsed.as_secs_f64() * 1e6 / count as f64,
            document_bytes as f64 * 100.0 / metabase_raw as f64,
            fact_bytes as f64 * 100.0 / metabase_raw as f64,
        );
    }
}

/// `BENCH_MODE=store`: the storage path in process, without HTTP: reports prepared up front
/// (half v3, half Metabase as in the full run), written through the real committer by
/// `BENCH_CLIENTS` concurrent writers, then the bytes on disk with a per-prefix breakdown.
/// Quick to iterate on sled settings and row encodings.
fn store_experiment(count: usize, clients: usize) {
    use reportstore::ingest::{metabase, v3};
    use reportstore::store::{Store, StoreConfig, committer};
    let mut generator = ReportGenerator::new(42);
    let testers = generator.testers().to_vec();
    let validator = v3::V3Validator::new().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut raw = 0u64;
    let mut prepared = Vec::with_capacity(count);
    for index in 0..count {
        let report = generator.next_report();
        if index % 2 == 0 {
            let body = serde_json::to_vec(&report.to_v3_document(&testers)).unwrap();
            raw += body.len() as u64;
            prepared.push(
                v3::prepare_v3_report(
                    &validator,
                    &body,
                    None,
                    reportstore::store::Protocol::V3,
                    now,
                )
                .unwrap(),
            );
        } else {
            let body = report.to_metabase_submission(&testers).into_bytes();
            raw += body.len() as u64;
            let tester = &testers[report.tester_index];
            let reporter = metabase::Reporter {
                name: tester.name.clone(),
                email: tester.email.clone(),
            };
            let submission = metabase::parse_submission(&body, metabase::REPORT_FACT_TYPE).unwrap();
            prepared.push(
                metabase::prepare_submission(&submission, Some(&reporter), &body, now).unwrap(),
            );
        }
    }
    let base = common::bench_directory("reportstore-store");
    let store_dir = base.join("store");
    let store = Arc::new(Store::open(&store_dir, &StoreConfig::default()).unwrap());
    let (client, thread) =
        committer::spawn(Arc::clone(&store), committer::CommitterConfig::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let queue = Arc::new(std::sync::Mutex::new(prepared));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let queue = Arc::clone(&queue);
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(report) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    client.put_report(report).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    drop(client);
    thread.join().unwrap();
    drop(store);
    let on_disk = directory_bytes(&store_dir);
    println!(
        "store: {count} reports committed in {:.2} s ({:.0}/s); {on_disk} B on disk = {} B/report = {:.1} % of {raw} B raw",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        on_disk / count as u64,
        on_disk as f64 * 100.0 / raw as f64
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    println!(
        "store: peak RSS of this process {}",
        status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?")
    );
    print_store_breakdown(&store_dir);
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

/// `BENCH_MODE=sled`: how much disk bare sled 0.34 takes for write patterns like the store's,
/// without any reportstore code: `BENCH_REPORTS` values of 700–1,400 random bytes (about a
/// compressed report) appended in key order, in groups of 13 per `apply_batch` + `flush` (the
/// committer's mean group under 32 clients), then the same with one small row per value in a
/// random place (like an index by release), then with values under random keys, then with each
/// group's 13 values packed into one value (the friendliest layout for sled's log: few, large,
/// appended items), then with values written one by one and moved into 128-value packs (about
/// 190 KB, over sled's 128 KiB blob threshold) once a pack's worth is complete, the only way to
/// get such large values while still making each report durable before it is acknowledged.
fn sled_space_experiment(count: usize) {
    struct Xorshift(u64);
    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }
    let base = common::bench_directory("reportstore-sled");
    for pattern in [
        "values in key order",
        "plus a small row in a random place",
        "values under random keys",
        "each group packed into one value",
        "values moved into 128-value packs",
    ] {
        let _ = std::fs::remove_dir_all(&base);
        let db = sled::Config::new()
            .path(&base)
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .expect("open sled");
        let mut random = Xorshift(0x1234_5678);
        let mut logical = 0u64;
        let mut seq = 0u64;
        let mut sealed = 0u64;
        let started = Instant::now();
        while seq < count as u64 {
            let mut batch = sled::Batch::default();
            let mut packed_group = Vec::new();
            let group_first_seq = seq + 1;
            for _ in 0..13 {
                seq += 1;
                let length = 700 + (random.next() % 700) as usize;
                let value: Vec<u8> = (0..length).map(|_| random.next() as u8).collect();
                if pattern == "each group packed into one value" {
                    logical += value.len() as u64;
                    packed_group.extend_from_slice(&value);
                    continue;
                }
                let mut key = vec![b'd'];
                if pattern == "values under random keys" {
                    key.extend_from_slice(&random.next().to_be_bytes());
                }
                key.extend_from_slice(&seq.to_be_bytes());
                logical += (key.len() + value.len()) as u64;
                batch.insert(key, value);
                if pattern == "plus a small row in a random place" {
                    let mut index_key = vec![b's'];
                    index_key.extend_from_slice(&(random.next() % 5000).to_be_bytes());
                    index_key.extend_from_slice(&seq.to_be_bytes());
                    logical += index_key.len() as u64;
                    batch.insert(index_key, &[][..]);
                }
            }
            if pattern == "values moved into 128-value packs" {
                const PACK: u64 = 128;
                // Packs only values of earlier groups: this group's are not applied yet.
                while sealed + PACK <= seq - 13 {
                    let mut pack = Vec::new();
                    for packed_seq in sealed + 1..=sealed + PACK {
                        let mut key = vec![b'd'];
                        key.extend_from_slice(&packed_seq.to_be_bytes());
                        pack.extend_from_slice(&db.get(&key).expect("get").expect("value"));
                        batch.remove(key);
                    }
                    let mut key = vec![b'p'];
                    key.extend_from_slice(&(sealed + 1).to_be_bytes());
                    batch.insert(key, pack);
                    sealed += PACK;
                }
            }
            if !packed_group.is_empty() {
                let mut key = vec![b'p'];
                key.extend_from_slice(&group_first_seq.to_be_bytes());
                logical += key.len() as u64;
                batch.insert(key, packed_group);
            }
            batch.insert(&b"m/last_seq"[..], &seq.to_be_bytes()[..]);
            db.apply_batch(batch).expect("apply");
            db.flush().expect("flush");
        }
        let elapsed = started.elapsed();
        drop(db);
        let on_disk = directory_bytes(&base);
        println!(
            "bare sled, {pattern}: {count} values in {:.1} s; {logical} B written as rows, {on_disk} B of files = {:.2} x",
            elapsed.as_secs_f64(),
            on_disk as f64 / logical as f64
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// `BENCH_MODE=zstd`: document frame size and compression time by zstd level with the shipped
/// dictionary (and, with `BENCH_DICTIONARY=<file>`, with another one), on canonical documents.
fn zstd_levels(count: usize) {
    use reportstore::ingest::v3;
    let mut generator = ReportGenerator::new(99);
    let testers = generator.testers().to_vec();
    let validator = v3::V3Validator::new().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let documents: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let body =
                serde_json::to_vec(&generator.next_report().to_v3_document(&testers)).unwrap();
            let prepared = v3::prepare_v3_report(
                &validator,
                &body,
                None,
                reportstore::store::Protocol::V3,
                now,
            )
            .unwrap();
            reportstore::codec::decompress_document(&prepared.document_frame).unwrap()
        })
        .collect();
    let raw: usize = documents.iter().map(Vec::len).sum();
    let mut dictionaries = vec![(
        "shipped".to_string(),
        reportstore::codec::SHIPPED_DICTIONARIES
            .last()
            .unwrap()
            .to_vec(),
    )];
    if let Some(path) = std::env::var_os("BENCH_DICTIONARY") {
        for path in std::env::split_paths(&path) {
            dictionaries.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    // Fact frames: the raw dictionary is the document's text escaped three times, without and
    // with the envelope template of fact format 1.
    {
        use reportstore::codec::json_escape_ascii;
        use reportstore::ingest::metabase;
        let reporter = metabase::Reporter {
            name: "Bench Tester".to_string(),
            email: "bench@example.org".to_string(),
        };
        let facts: Vec<(Vec<u8>, String)> = (0..count)
            .map(|_| {
                let body = generator
                    .next_report()
                    .to_metabase_submission(&testers)
                    .into_bytes();
                let submission =
                    metabase::parse_submission(&body, metabase::REPORT_FACT_TYPE).unwrap();
                let prepared =
                    metabase::prepare_submission(&submission, Some(&reporter), &body, now).unwrap();
                let document =
                    reportstore::codec::decompress_document(&prepared.document_frame).unwrap();
                let text = reportstore::store::document_textreport(&document).unwrap();
                (body, text)
            })
            .collect();
        let raw: usize = facts.iter().map(|(body, _)| body.len()).sum();
        for (name, template) in [
            ("none", &[][..]),
            (
                "envelope-1",
                reportstore::codec::FACT_ENVELOPE_TEMPLATE_1.as_bytes(),
            ),
        ] {
            for level in [3, 4, 5, 6] {
                let mut context = zstd::zstd_safe::CCtx::create();
                let mut frame = Vec::with_capacity(1 << 20);
                let dictionaries: Vec<Vec<u8>> = facts
                    .iter()
                    .map(|(_, text)| {
                        let mut dictionary = template.to_vec();
                        dictionary.extend_from_slice(
                            json_escape_ascii(&json_escape_ascii(&json_escape_ascii(text)))
                                .as_bytes(),
                        );
                        dictionary
                    })
                    .collect();
                let started = thread_cpu_time();
                let mut compressed = 0;
                for ((body, _), dictionary) in facts.iter().zip(&dictionaries) {
                    frame.clear();
                    compressed += context
                        .compress_using_dict(&mut frame, body, dictionary, level)
                        .unwrap();
                }
                println!(
                    "fact frames, template {name}, level {level}: {:.1} B/fact = {:.2} % of {:.0} B, {:.1} us/fact (compression only)",
                    compressed as f64 / count as f64,
                    compressed as f64 * 100.0 / raw as f64,
                    raw as f64 / count as f64,
                    (thread_cpu_time() - started).as_secs_f64() * 1e6 / count as f64
                );
            }
        }
    }
    let levels: Vec<i32> = std::env::var("BENCH_LEVELS")
        .unwrap_or_else(|_| "1,3,5,7,9,12,15,19".to_string())
        .split(',')
        .filter_map(|level| level.trim().parse().ok())
        .collect();
    for (name, dictionary) in &dictionaries {
        for &level in &levels {
            let mut compressor =
                zstd::bulk::Compressor::with_dictionary(level, dictionary).unwrap();
            // The first frame builds the dictionary's tables: not part of the steady state.
            compressor.compress(&documents[0]).unwrap();
            let started = thread_cpu_time();
            let compressed: usize = documents
                .iter()
                .map(|document| compressor.compress(document).unwrap().len())
                .sum();
            println!(
                "dictionary {name} ({} B) level {level:>2}: {:>6.1} B/document = {:.2} % of {:.0} B, {:.1} us/document",
                dictionary.len(),
                compressed as f64 / count as f64,
                compressed as f64 * 100.0 / raw as f64,
                raw as f64 / count as f64,
                (thread_cpu_time() - started).as_secs_f64() * 1e6 / count as f64
            );
        }
    }
}

fn main() {
    if !common::invoked_as_bench() {
        return;
    }
    match std::env::var("BENCH_MODE").as_deref() {
        Ok("cpu") => {
            cpu_microbenchmark(env_number("BENCH_REPORTS", 2000));
            return;
        }
        Ok("sled") => {
            sled_space_experiment(env_number("BENCH_REPORTS", 100_000));
            return;
        }
        Ok("zstd") => {
            zstd_levels(env_number("BENCH_REPORTS", 2000));
            return;
        }
        Ok("store") => {
            store_experiment(
                env_number("BENCH_REPORTS", 30_000),
                env_number("BENCH_CLIENTS", 32),
            );
            return;
        }
        Ok("breakdown") => {
            // BENCH_STORE=<data dir>/store of a run kept with BENCH_KEEP=1.
            let store = std::env::var_os("BENCH_STORE").expect("BENCH_STORE=<path to store>");
            print_store_breakdown(Path::new(&store));
            return;
        }
        _ => {}
    }
    let per_phase = env_number("BENCH_REPORTS", 20_000);
    let rate_secs = env_number("BENCH_RATE_SECS", 20);
    let clients = env_number("BENCH_CLIENTS", 32);
    let rate = env_number("BENCH_RATE", 1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let generation_started = Instant::now();
    let mut generator = ReportGenerator::new(42);
    let testers = generator.testers().to_vec();
    let authorization: Vec<String> = testers
        .iter()
        .map(|tester| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", tester.user_guid, tester.secret))
            )
        })
        .collect();
    let mut raw_json_bytes = 0u64;
    let make_v3 = |generator: &mut ReportGenerator, raw: &mut u64| {
        let report = generator.next_report();
        let body = serde_json::to_vec(&report.to_v3_document(&testers)).unwrap();
        *raw += body.len() as u64;
        Prepared {
            url_path: "/v3/report",
            body: Arc::new(body),
            authorization: None,
        }
    };
    let v3_requests: Vec<Prepared> = (0..per_phase)
        .map(|_| make_v3(&mut generator, &mut raw_json_bytes))
        .collect();
    let make_metabase = |generator: &mut ReportGenerator, raw: &mut u64| {
        let report = generator.next_report();
        let body = report.to_metabase_submission(&testers).into_bytes();
        *raw += body.len() as u64;
        Prepared {
            url_path: "/api/v1/submit/CPAN-Testers-Report",
            body: Arc::new(body),
            authorization: Some(authorization[report.tester_index].clone()),
        }
    };
    let metabase_requests: Vec<Prepared> = (0..per_phase)
        .map(|_| make_metabase(&mut generator, &mut raw_json_bytes))
        .collect();
    let rate_requests: Vec<Prepared> = (0..rate * rate_secs)
        .map(|index| {
            if index % 2 == 0 {
                make_v3(&mut generator, &mut raw_json_bytes)
            } else {
                make_metabase(&mut generator, &mut raw_json_bytes)
            }
        })
        .collect();
    let total_reports = v3_requests.len() + metabase_requests.len() + rate_requests.len();
    let v3_mean =
        v3_requests.iter().map(|r| r.body.len()).sum::<usize>() / v3_requests.len().max(1);
    let metabase_mean = metabase_requests
        .iter()
        .map(|r| r.body.len())
        .sum::<usize>()
        / metabase_requests.len().max(1);
    println!(
        "generated {total_reports} reports in {:.1} s (mean v3 document {v3_mean} B, mean Metabase body {metabase_mean} B)",
        generation_started.elapsed().as_secs_f64()
    );

    let data_dir = common::bench_directory("reportstore-bench");
    std::fs::create_dir_all(&data_dir).unwrap();
    let server = Server::start(&data_dir, &[], Duration::from_secs(30));
    let memory = server.memory_sampler();
    let base = server.base_url.clone();
    println!("server on {base}, data in {}", server.data_dir.display());

    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(clients * 2)
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        for tester in &testers {
            let response = client
                .post(format!("{base}/api/v1/register"))
                .body(metabase_register_body(tester))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "register failed: {}",
                response.status()
            );
        }

        // Warm-up (BENCH_WARMUP=0 skips it): a tester's first submission costs one Argon2
        // verification (tens of ms of CPU, 4 at a time); the server then trusts the credential
        // for 10 minutes. A running server has long verified its active testers, so the timed
        // phases measure that steady state: every tester authenticates once beforehand, with a
        // body that fails to parse after authentication, so nothing is stored.
        if env_number("BENCH_WARMUP", 1) != 0 {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for chunk in authorization.chunks(authorization.len().div_ceil(clients).max(1)) {
                let client = client.clone();
                let base = base.clone();
                let chunk = chunk.to_vec();
                tasks.push(tokio::spawn(async move {
                    for header in chunk {
                        let response = client
                            .post(format!("{base}/api/v1/submit/CPAN-Testers-Report"))
                            .header("Content-Type", "application/octet-stream")
                            .header("Authorization", header)
                            .body("{}")
                            .send()
                            .await
                            .expect("warm-up request failed");
                        assert_eq!(response.status(), 400, "warm-up: authenticated, then refused");
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            println!(
                "warm-up: {} testers authenticated once in {:.2} s (not timed; credentials are cached as in steady state)",
                authorization.len(),
                started.elapsed().as_secs_f64()
            );
        }

        let meter = CpuMeter::start(&server);
        let committed = committer_metrics(&client, &base).await;
        let (elapsed, latencies) = closed_loop(&client, &base, v3_requests, clients).await;
        report_line(
            &format!("v3, {clients} clients"),
            latencies.len(),
            elapsed,
            &latencies,
        );
        println!("{}", meter.line(&server, latencies.len()));
        let committed = {
            let now = committer_metrics(&client, &base).await;
            println!("{}", committer_line(committed, now));
            now
        };
        let meter = CpuMeter::start(&server);
        let (elapsed, latencies) = closed_loop(&client, &base, metabase_requests, clients).await;
        report_line(
            &format!("metabase, {clients} clients"),
            latencies.len(),
            elapsed,
            &latencies,
        );
        println!("{}", meter.line(&server, latencies.len()));
        let committed = {
            let now = committer_metrics(&client, &base).await;
            println!("{}", committer_line(committed, now));
            now
        };
        let count = rate_requests.len();
        let meter = CpuMeter::start(&server);
        let started = Instant::now();
        let latencies = open_loop(&client, &base, rate_requests, rate).await;
        report_line(
            &format!("open loop {rate}/s (mixed)"),
            count,
            started.elapsed(),
            &latencies,
        );
        println!("{}", meter.line(&server, count));
        println!(
            "{}",
            committer_line(committed, committer_metrics(&client, &base).await)
        );
    });

    let peak_rss = server.peak_rss_bytes();
    let (peak_anonymous, peak_file) = memory.finish();
    server.stop();
    let on_disk = directory_bytes(&data_dir.join("store"));
    println!(
        "bytes on disk: {on_disk} for {total_reports} reports = {} B/report; raw JSON sent {raw_json_bytes} B = {:.1} % of raw",
        on_disk / total_reports as u64,
        on_disk as f64 * 100.0 / raw_json_bytes as f64
    );
    println!(
        "server peak RSS (VmHWM): {:.1} MiB; sampled peaks: anonymous (heap) {:.1} MiB, file-backed (page cache, mmap) {:.1} MiB",
        peak_rss as f64 / 1024.0 / 1024.0,
        peak_anonymous as f64 / 1024.0 / 1024.0,
        peak_file as f64 / 1024.0 / 1024.0
    );
    if std::env::var_os("BENCH_BREAKDOWN").is_some() {
        print_store_breakdown(&data_dir.join("store"));
    }
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
