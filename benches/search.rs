//! Full-text search benchmark: indexing throughput, index size, query latency (through tantivy
//! directly, through the library, and over HTTP from a real `reportstore serve` process) and
//! freshness under steady ingest.
//!
//! `cargo bench --bench search` runs, with reports from the deterministic generator:
//! 1. store: `BENCH_SEARCH_REPORTS` reports (default 1,000,000) prepared by the v3 ingest path
//!    (validation, canonical form, compression) and written through the committer, as the
//!    server would;
//! 2. index: the indexer thread tails the log while the store fills, as in the server (sustained
//!    reports/s, and how far behind it ends); size of the index on disk;
//! 3. latency of a fixed query set, `BENCH_SEARCH_ITERATIONS` rounds (default 1000; with
//!    200 the p99 is the second-worst run, and it moved by half from one run to the next).
//!    In process, each round runs every variant once (see `measure_in_turns`): `direct` is the
//!    same tantivy query with `(TopDocs, Count)` (aggregations for the facet-only query) on
//!    tantivy's default single-threaded search, `dirMT` the same with the segments collected
//!    on the library's search threads, `+facets` adds the facets as terms aggregations and
//!    reads the page's stored documents, `library` is `SearchIndex::search` (facets, cursor,
//!    hits and snippets read from sled). Then against a server process, each round runs
//!    `direct` once and `GET /v3/search` once, one request at a time from a one-thread client;
//!    and 200 paced rounds with 10 ms of idle before each run, as under light traffic. Each
//!    timed answer's wait is split into the server's `took_ms` and the rest (HTTP both ways,
//!    serializing, hand-offs), to show which side a slow answer lost its time on;
//! 4. freshness: an open-loop stream of `BENCH_FRESHNESS_RATE` v3 reports/s (default 1000) for
//!    `BENCH_FRESHNESS_SECS` (default 20) against that server, while `/health` is polled every
//!    5 ms; a report's lag is the time from its 201 to the first poll whose `indexed_seq`
//!    covers it (its seq is read from the store afterwards).
//!
//! After step 2, the finished store is indexed again from scratch as `reportstore reindex` does
//! (skip with `BENCH_SEARCH_REBUILD=0`). `BENCH_DIR` chooses where the data goes (default: the
//! temp dir); `BENCH_KEEP` keeps it, and `BENCH_SEARCH_DATA=<kept folder>` measures step 3 again on
//! it without building anything (no freshness run, which would add reports, unless
//! `BENCH_FRESHNESS_RATE` is set). For quick re-timings, `BENCH_SEARCH_QUERIES` names the
//! queries to time (comma-separated, e.g. `rare phrase,newest first + filter`) and
//! `BENCH_SEARCH_IN_PROCESS=0` skips the in-process rounds of step 3 (their columns print 0).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reportstore::generator::ReportGenerator;
use reportstore::index::threads::search_executor;
use reportstore::index::{IndexerConfig, SearchIndex, SearchRequest, SortOrder, directory_size};
use reportstore::ingest::v3::{V3Validator, prepare_v3_report};
use reportstore::store::committer::{self, CommitterConfig, PreparedReport};
use reportstore::store::{Protocol, Store, StoreConfig};
use tantivy::aggregation::AggregationCollector;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::collector::{Collector, Count, TopDocs};
use tantivy::query::EnableScoring;
use tantivy::{DateTime, Executor, Order};

mod common;

use common::{env_number, percentile};

/// A `reportstore serve` process (see `common`).
type Server = common::ServerProcess;

/// The fixed query set: (name, query-string parameters).
const QUERIES: &[(&str, &[(&str, &str)])] = &[
    ("rare phrase", &[("q", "\"Smartmatch is deprecated\"")]),
    (
        "filtered phrase",
        &[("q", "\"Can't locate object method\""), ("grade", "fail")],
    ),
    (
        "common term + grade + osname",
        &[("q", "failed"), ("grade", "fail"), ("osname", "linux")],
    ),
    ("facet-only", &[("grade", "fail"), ("limit", "0")]),
    (
        "newest first + filter",
        &[("osname", "darwin"), ("sort", "newest")],
    ),
];

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn query_pairs(parameters: &[(&str, &str)]) -> Vec<(String, String)> {
    parameters
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Timings of building the store with the indexer following it.
struct BuildFigures {
    /// Until the last report was durable.
    stored: Duration,
    /// Until the index had caught up with the last report (searchable).
    indexed: Duration,
    /// Until the indexer had made its final commit and its merges had finished.
    merged: Duration,
}

/// Writes `count` generated reports through the v3 ingest path and the committer, with the
/// indexer tailing the log as it does in the server.
fn build_store_and_index(
    store: &Arc<Store>,
    index_directory: &Path,
    count: usize,
    runtime: &tokio::runtime::Runtime,
) -> (SearchIndex, BuildFigures) {
    let started = Instant::now();
    let config = CommitterConfig {
        queue_depth: 4096,
        max_group_writes: 1024,
        ..CommitterConfig::default()
    };
    let (search_index, indexer) =
        SearchIndex::open(index_directory, IndexerConfig::default()).expect("open index");
    let (committer, committer_thread) =
        committer::spawn(Arc::clone(store), config).expect("committer");
    let indexer = indexer
        .spawn(Arc::clone(store), committer.durable_seq())
        .expect("indexer");
    let validator = Arc::new(V3Validator::new().expect("v3 schema"));
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<PreparedReport>(4096);
    let producers = 2;
    let mut producer_threads = Vec::new();
    for producer in 0..producers {
        let sender = sender.clone();
        let validator = Arc::clone(&validator);
        let share = count / producers + usize::from(producer < count % producers);
        producer_threads.push(std::thread::spawn(move || {
            let mut generator = ReportGenerator::new(1_000 + producer as u64);
            let testers = generator.testers().to_vec();
            for _ in 0..share {
                let report = generator.next_report();
                let body = serde_json::to_vec(&report.to_v3_document(&testers)).expect("json");
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
    let stored = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let mut in_flight = tokio::task::JoinSet::new();
        while let Some(prepared) = receiver.recv().await {
            while in_flight.len() >= 2048 {
                in_flight.join_next().await;
            }
            let client = committer.clone();
            let stored = Arc::clone(&stored);
            let search_index = search_index.clone();
            in_flight.spawn(async move {
                loop {
                    match client.put_report(prepared.clone()).await {
                        Ok(_) => break,
                        Err(reportstore::Error::Unavailable { .. }) => {
                            tokio::time::sleep(Duration::from_millis(5)).await
                        }
                        Err(error) => panic!("store failed: {error}"),
                    }
                }
                let done = stored.fetch_add(1, Ordering::Relaxed) + 1;
                if done.is_multiple_of(100_000) {
                    println!(
                        "  {done} reports stored, {} searchable, after {:.0} s",
                        search_index.indexed_seq(),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
        while in_flight.join_next().await.is_some() {}
    });
    for thread in producer_threads {
        thread.join().expect("producer");
    }
    let stored_after = started.elapsed();
    let last_seq = store.last_seq().expect("last seq");
    while search_index.indexed_seq() < last_seq {
        std::thread::sleep(Duration::from_millis(10));
    }
    let indexed_after = started.elapsed();
    // The server's shutdown order: the committer first, then the indexer (final commit, merges).
    committer.stop_blocking();
    drop(committer);
    committer_thread.join().expect("committer thread");
    indexer.stop().expect("indexer stop");
    let figures = BuildFigures {
        stored: stored_after,
        indexed: indexed_after,
        merged: started.elapsed(),
    };
    (search_index, figures)
}

/// The queries to time: all of [`QUERIES`], or those named in `BENCH_SEARCH_QUERIES`
/// (comma-separated, e.g. `rare phrase,newest first + filter`), to re-time a few quickly.
fn selected_queries() -> Vec<(&'static str, &'static [(&'static str, &'static str)])> {
    let Ok(names) = std::env::var("BENCH_SEARCH_QUERIES") else {
        return QUERIES.to_vec();
    };
    let wanted: Vec<&str> = names.split(',').map(str::trim).collect();
    for name in &wanted {
        assert!(
            QUERIES.iter().any(|(known, _)| known == name),
            "BENCH_SEARCH_QUERIES: no query is named {name:?}"
        );
    }
    QUERIES
        .iter()
        .filter(|(name, _)| wanted.contains(name))
        .copied()
        .collect()
}

/// Runs each of `variants` once per round, for `iterations` rounds after a few warm-up
/// rounds, with `pause` before each run; each variant's sorted durations.
///
/// In turns rather than one variant after another: this machine stalls now and then (bursts
/// of about 20 ms in which every search, tantivy's own included, took 2-4x its time), and a
/// stall lands on whatever runs at that moment. Timed one after the other, one variant's p99
/// caught a stall and the other's did not, and the ratio of the two p99s moved by a third
/// from run to run; in turns, every variant meets the same stalls.
fn measure_in_turns(
    iterations: usize,
    pause: Duration,
    variants: &mut [&mut dyn FnMut()],
) -> Vec<Vec<Duration>> {
    let mut durations = vec![Vec::with_capacity(iterations); variants.len()];
    for round in 0..iterations + WARM_UP_ROUNDS {
        for (variant, variant_durations) in variants.iter_mut().zip(&mut durations) {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let started = Instant::now();
            variant();
            if round >= WARM_UP_ROUNDS {
                variant_durations.push(started.elapsed());
            }
        }
    }
    for variant_durations in &mut durations {
        variant_durations.sort();
    }
    durations
}

/// Rounds run before timing starts (first touches of columns, dictionaries and buffers).
const WARM_UP_ROUNDS: usize = 20;

/// Rounds of the paced runs, and the pause before each request.
const PACED_ROUNDS: usize = 200;
const PACED_PAUSE: Duration = Duration::from_millis(10);

struct QueryFigures {
    name: &'static str,
    /// The query-string parameters of the query (from [`QUERIES`]).
    parameters: &'static [(&'static str, &'static str)],
    total: u64,
    direct: Vec<Duration>,
    /// `direct` with segments collected on as many threads as the library's search uses.
    direct_threads: Vec<Duration>,
    /// The same query with the answer's other parts done by tantivy's own components: facet
    /// counts as terms aggregations, and the page's stored documents read.
    direct_full: Vec<Duration>,
    library: Vec<Duration>,
    /// `direct` again, timed in turns with `http` (see [`measure_in_turns`]).
    direct_beside_http: Vec<Duration>,
    http: Vec<Duration>,
    /// `direct` and `http` with a pause before each run, as under light traffic.
    paced_direct: Vec<Duration>,
    paced_http: Vec<Duration>,
    /// Of each timed `http` request (in `http`'s rounds): the server's own `took_ms` (the
    /// search, without serializing the answer or any HTTP) and the rest of the time the client
    /// waited. Both sorted.
    http_server_search: Vec<Duration>,
    http_rest: Vec<Duration>,
    /// The same split, averaged over the slowest 1 % of the requests: (search, rest).
    http_slowest_split: (Duration, Duration),
    /// Bytes of one answer.
    http_answer_bytes: usize,
}

fn facet_aggregations() -> Aggregations {
    serde_json::from_value(serde_json::json!({
        "grade": { "terms": { "field": "grade", "size": 50 } },
        "osname": { "terms": { "field": "osname", "size": 50 } },
        "perl": { "terms": { "field": "perl", "size": 50 } },
        "dist": { "terms": { "field": "dist", "size": 50 } },
    }))
    .expect("aggregation request")
}

/// The benchmark's `direct` query: `(TopDocs, Count)` in the request's order, or `Count` and the
/// facets as terms aggregations for a page of no hits, on `executor`.
fn run_direct(
    search_index: &SearchIndex,
    request: &SearchRequest,
    query: &dyn tantivy::query::Query,
    executor: &Executor,
) {
    let searcher = search_index.searcher();
    if request.limit == 0 {
        let aggregations =
            AggregationCollector::from_aggs(facet_aggregations(), Default::default());
        search_on(&searcher, query, &(Count, aggregations), executor);
        return;
    }
    let top = TopDocs::with_limit(request.limit);
    match request.sort {
        SortOrder::Relevance => {
            search_on(&searcher, query, &(top.order_by_score(), Count), executor);
        }
        SortOrder::Newest => {
            let newest = top.order_by_fast_field::<DateTime>("created", Order::Desc);
            search_on(&searcher, query, &(newest, Count), executor);
        }
    }
}

/// `searcher.search` on `executor`, scoring only when the collector asks for it (as the
/// default executor's `search` decides).
fn search_on<C: Collector>(
    searcher: &tantivy::Searcher,
    query: &dyn tantivy::query::Query,
    collector: &C,
    executor: &Executor,
) {
    let scoring = if collector.requires_scoring() {
        EnableScoring::enabled_from_searcher(searcher)
    } else {
        EnableScoring::disabled_from_searcher(searcher)
    };
    let _ = searcher
        .search_with_executor(query, collector, executor, scoring)
        .expect("search");
}

/// Direct (tantivy) and library latencies of the query set, timed in turns.
fn measure_in_process(
    search_index: &SearchIndex,
    store: &Store,
    iterations: usize,
) -> Vec<QueryFigures> {
    let fields = search_index.fields();
    let mut figures = Vec::new();
    for (name, parameters) in selected_queries() {
        let request =
            SearchRequest::from_query_pairs(&query_pairs(parameters)).expect("valid query");
        let query = request.to_query(&fields);
        let limit = request.limit;
        let mut direct = || {
            run_direct(
                search_index,
                &request,
                query.as_ref(),
                &Executor::SingleThread,
            );
        };
        // The library's own search threads, so that "as many threads" means the same ones.
        let mut direct_threads = || {
            run_direct(search_index, &request, query.as_ref(), search_executor());
        };
        let mut direct_full = || {
            let searcher = search_index.searcher();
            let aggregations =
                AggregationCollector::from_aggs(facet_aggregations(), Default::default());
            let page: Vec<tantivy::DocAddress> = match (limit, request.sort) {
                (0, _) => {
                    let _ = searcher
                        .search(query.as_ref(), &(Count, aggregations))
                        .expect("search");
                    Vec::new()
                }
                (_, SortOrder::Relevance) => {
                    let collector = (
                        TopDocs::with_limit(limit).order_by_score(),
                        Count,
                        aggregations,
                    );
                    let (top, _, _) = searcher.search(query.as_ref(), &collector).expect("search");
                    top.into_iter().map(|(_, address)| address).collect()
                }
                (_, SortOrder::Newest) => {
                    let collector = (
                        TopDocs::with_limit(limit)
                            .order_by_fast_field::<DateTime>("created", Order::Desc),
                        Count,
                        aggregations,
                    );
                    let (top, _, _) = searcher.search(query.as_ref(), &collector).expect("search");
                    top.into_iter().map(|(_, address)| address).collect()
                }
            };
            for address in page {
                let _: tantivy::TantivyDocument = searcher.doc(address).expect("doc");
            }
        };
        let mut total = 0;
        let mut library = || {
            total = search_index.search(store, &request).expect("search").total;
        };
        let mut timed = measure_in_turns(
            iterations,
            Duration::ZERO,
            &mut [
                &mut direct,
                &mut direct_threads,
                &mut direct_full,
                &mut library,
            ],
        )
        .into_iter();
        let mut next = || timed.next().expect("one per variant");
        figures.push(QueryFigures {
            name,
            parameters,
            total,
            direct: next(),
            direct_threads: next(),
            direct_full: next(),
            library: next(),
            direct_beside_http: Vec::new(),
            http: Vec::new(),
            paced_direct: Vec::new(),
            paced_http: Vec::new(),
            http_server_search: Vec::new(),
            http_rest: Vec::new(),
            http_slowest_split: (Duration::ZERO, Duration::ZERO),
            http_answer_bytes: 0,
        });
    }
    figures
}

/// What reading one hit back costs: the stored id (tantivy doc store), the report from sled
/// (read and zstd-decompressed), and parsing the fields and text out of the document.
fn print_hit_costs(search_index: &SearchIndex, store: &Store) {
    use tantivy::schema::Value;
    let searcher = search_index.searcher();
    let fields = search_index.fields();
    let request =
        SearchRequest::from_query_pairs(&query_pairs(&[("limit", "100")])).expect("valid query");
    let top = searcher
        .search(
            request.to_query(&fields).as_ref(),
            &TopDocs::with_limit(100).order_by_score(),
        )
        .expect("search");
    let (mut id_time, mut read_time, mut parse_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut text_bytes = 0;
    for (_, address) in &top {
        let started = Instant::now();
        let document: tantivy::TantivyDocument = searcher.doc(*address).expect("doc");
        let id_text = document
            .get_first(fields.id)
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_string();
        let id = uuid::Uuid::parse_str(&id_text).expect("uuid");
        id_time += started.elapsed();
        let started = Instant::now();
        let report = store.report(&id).expect("read").expect("stored");
        read_time += started.elapsed();
        let started = Instant::now();
        let stored =
            reportstore::index::schema::StoredDocument::parse(&report.document).expect("parse");
        let _ = stored.fields(0);
        text_bytes += stored.full_text().len();
        parse_time += started.elapsed();
    }
    let count = top.len().max(1) as u32;
    println!(
        "per hit: id from the doc store {:.1} us, sled read + zstd {:.1} us, parse {:.1} us (mean text {} B)",
        (id_time / count).as_secs_f64() * 1e6,
        (read_time / count).as_secs_f64() * 1e6,
        (parse_time / count).as_secs_f64() * 1e6,
        text_bytes / count as usize,
    );
}

async fn health(client: &reqwest::Client, base_url: &str) -> serde_json::Value {
    client
        .get(format!("{base_url}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health json")
}

/// HTTP latencies of the query set, each request timed in turns with the direct query on
/// the index the server serves (opened read-only here): back to back, then paced.
///
/// Each request runs on a one-thread client runtime of its own (`block_on` here), and the
/// direct query on this same thread: on a multi-thread runtime, or with reqwest's blocking
/// client (which sends to a runtime on another thread), each request would also pay for the
/// client handing its work between threads.
fn measure_http(
    search_index: &SearchIndex,
    base_url: &str,
    figures: &mut [QueryFigures],
    iterations: usize,
) {
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let get = |url: &str| -> (reqwest::StatusCode, Vec<u8>) {
        client_runtime.block_on(async {
            let response = client.get(url).send().await.expect("search request");
            let status = response.status();
            (
                status,
                response.bytes().await.expect("search body").to_vec(),
            )
        })
    };
    let fields = search_index.fields();
    for figure in figures.iter_mut() {
        let parameters = figure.parameters;
        let request =
            SearchRequest::from_query_pairs(&query_pairs(parameters)).expect("valid query");
        let query = request.to_query(&fields);
        let encoded: Vec<String> = parameters
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect();
        let url = format!("{base_url}/v3/search?{}", encoded.join("&"));
        let (status, body) = get(&url);
        assert_eq!(status, 200, "{url}");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["total"], figure.total, "{url}: same total over HTTP");
        let mut direct = || {
            run_direct(
                search_index,
                &request,
                query.as_ref(),
                &Executor::SingleThread,
            );
        };
        figure.http_answer_bytes = body.len();
        // Each answer is kept (not parsed) so that its `took_ms` can be set against the time
        // the client waited, without parsing inside the timed run.
        let mut answers: Vec<(Duration, Vec<u8>)> = Vec::with_capacity(iterations + WARM_UP_ROUNDS);
        let mut http = || {
            let started = Instant::now();
            let (status, body) = get(&url);
            let waited = started.elapsed();
            assert_eq!(status, 200, "{url}");
            answers.push((waited, body));
        };
        let mut timed =
            measure_in_turns(iterations, Duration::ZERO, &mut [&mut direct, &mut http]).into_iter();
        figure.direct_beside_http = timed.next().expect("direct");
        figure.http = timed.next().expect("http");
        let mut paced =
            measure_in_turns(PACED_ROUNDS, PACED_PAUSE, &mut [&mut direct, &mut http]).into_iter();
        figure.paced_direct = paced.next().expect("direct");
        figure.paced_http = paced.next().expect("http");
        // The back-to-back rounds' answers, without their warm-up (the paced ones follow).
        split_http_answers(
            figure,
            &answers[WARM_UP_ROUNDS..WARM_UP_ROUNDS + iterations],
        );
    }
}

/// Splits each timed answer's wait into the server's search (`took_ms`) and the rest (HTTP,
/// serializing the answer, handing the search to and from the search threads).
fn split_http_answers(figure: &mut QueryFigures, answers: &[(Duration, Vec<u8>)]) {
    let mut splits: Vec<(Duration, Duration, Duration)> = answers
        .iter()
        .map(|(waited, body)| {
            let answer: serde_json::Value = serde_json::from_slice(body).expect("json");
            let took_ms = answer["took_ms"].as_f64().expect("took_ms");
            let search = Duration::from_secs_f64(took_ms / 1000.0).min(*waited);
            (*waited, search, *waited - search)
        })
        .collect();
    splits.sort_by_key(|(waited, _, _)| std::cmp::Reverse(*waited));
    let slowest = &splits[..splits.len().div_ceil(100).min(splits.len())];
    let count = slowest.len().max(1) as u32;
    figure.http_slowest_split = (
        slowest
            .iter()
            .map(|(_, search, _)| *search)
            .sum::<Duration>()
            / count,
        slowest.iter().map(|(_, _, rest)| *rest).sum::<Duration>() / count,
    );
    figure.http_server_search = splits.iter().map(|(_, search, _)| *search).collect();
    figure.http_server_search.sort();
    figure.http_rest = splits.iter().map(|(_, _, rest)| *rest).collect();
    figure.http_rest.sort();
}

/// What the freshness run observed.
struct FreshnessRun {
    /// (report id, when its 201 arrived).
    acknowledged: Vec<(uuid::Uuid, Instant)>,
    /// (when, `indexed_seq`) of every `/health` poll, in order.
    polls: Vec<(Instant, u64)>,
    /// Time from each report's scheduled send to its 201 (retries included), sorted.
    ingest_latencies: Vec<Duration>,
    /// 503 answers (the server shedding load) and connections reset while sending, each
    /// retried after 50 ms: when (since the start) and the answer's message.
    refusals: Vec<(Duration, String)>,
}

/// Open-loop v3 ingest at `rate`/s for `seconds`, polling `/health` every 5 ms.
async fn freshness_run(
    client: &reqwest::Client,
    base_url: &str,
    rate: usize,
    seconds: usize,
) -> FreshnessRun {
    let mut generator = ReportGenerator::new(77);
    let testers = generator.testers().to_vec();
    let bodies: Vec<Vec<u8>> = (0..rate * seconds)
        .map(|_| {
            let mut document = generator.next_report().to_v3_document(&testers);
            // New ids, so these never collide with the stored reports.
            document["id"] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
            serde_json::to_vec(&document).expect("json")
        })
        .collect();
    // Polls until the ingest is over and the index has caught up with it.
    let ingest_done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (client, base_url, ingest_done) = (
            client.clone(),
            base_url.to_string(),
            Arc::clone(&ingest_done),
        );
        tokio::spawn(async move {
            let mut polls = Vec::new();
            let mut deadline = None;
            loop {
                let answer = health(&client, &base_url).await;
                polls.push((
                    Instant::now(),
                    answer["index"]["indexed_seq"].as_u64().unwrap_or(0),
                ));
                if ingest_done.load(Ordering::Acquire) {
                    let deadline =
                        *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(120));
                    if answer["index"]["lag_entries"] == 0 || Instant::now() > deadline {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            polls
        })
    };
    let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(bodies.len());
    for (index, body) in bodies.into_iter().enumerate() {
        let due = started + interval * index as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, base_url, refusals) =
            (client.clone(), base_url.to_string(), Arc::clone(&refusals));
        tasks.push(tokio::spawn(async move {
            loop {
                let sent = client
                    .post(format!("{base_url}/v3/report"))
                    .body(body.clone())
                    .send()
                    .await;
                let response = match sent {
                    Ok(response) => response,
                    // A 503 sent before the body was read closes the connection, and the
                    // close can reach the client as a reset while it is still sending.
                    Err(error) if error.is_request() || error.is_connect() => {
                        refusals
                            .lock()
                            .expect("refusals")
                            .push((started.elapsed(), "connection reset".to_string()));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(error) => panic!("post report: {error}"),
                };
                if response.status() == 503 {
                    let refused_at = started.elapsed();
                    let problem: serde_json::Value = response.json().await.unwrap_or_default();
                    let detail = problem["errors"][0]["message"]
                        .as_str()
                        .or_else(|| problem["error"].as_str())
                        .unwrap_or("no message")
                        .to_string();
                    refusals
                        .lock()
                        .expect("refusals")
                        .push((refused_at, detail));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                assert_eq!(response.status(), 201);
                let acknowledged = Instant::now();
                let answer: serde_json::Value = response.json().await.expect("json");
                let id = uuid::Uuid::parse_str(answer["id"].as_str().expect("id")).expect("uuid");
                return (id, acknowledged, acknowledged - due);
            }
        }));
    }
    let mut acknowledged = Vec::new();
    let mut ingest_latencies = Vec::new();
    for task in tasks {
        let (id, at, latency) = task.await.expect("post task");
        acknowledged.push((id, at));
        ingest_latencies.push(latency);
    }
    ingest_done.store(true, Ordering::Release);
    let polls = poller.await.expect("poller");
    ingest_latencies.sort();
    FreshnessRun {
        acknowledged,
        polls,
        ingest_latencies,
        refusals: std::mem::take(&mut *refusals.lock().expect("refusals")),
    }
}

fn main() {
    if !common::invoked_as_bench() {
        return;
    }
    let report_count = env_number("BENCH_SEARCH_REPORTS", 1_000_000);
    let iterations = env_number("BENCH_SEARCH_ITERATIONS", 1000);
    let freshness_rate = env_number("BENCH_FRESHNESS_RATE", 1000);
    let freshness_secs = env_number("BENCH_FRESHNESS_SECS", 20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // A data folder kept by an earlier run (`BENCH_KEEP`) can be measured again without
    // building it: `BENCH_SEARCH_DATA=/path`. Its store then holds the earlier run's freshness
    // reports too.
    let reused_data_dir = std::env::var_os("BENCH_SEARCH_DATA").map(std::path::PathBuf::from);
    let data_dir = reused_data_dir
        .clone()
        .unwrap_or_else(|| common::bench_directory("reportstore-search-bench"));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    println!(
        "search benchmark: {report_count} generated reports, data in {}",
        data_dir.display()
    );

    // 1. and 2. The store, written as the server writes it, and the index following it.
    let store =
        Arc::new(Store::open(&data_dir.join("store"), &StoreConfig::default()).expect("store"));
    let index_directory = data_dir.join("index");
    if reused_data_dir.is_some() {
        let (search_index, indexer) =
            SearchIndex::open(&index_directory, IndexerConfig::default()).expect("open index");
        drop(indexer);
        let last_seq = store.last_seq().expect("last seq");
        assert_eq!(
            search_index.indexed_seq(),
            last_seq,
            "the kept index is complete"
        );
        println!(
            "reusing {last_seq} stored and indexed reports; index {:.0} MiB",
            directory_size(&index_directory) as f64 / 1048576.0
        );
        // Only when asked for by name: each freshness run adds its reports to the kept store.
        let reuse_freshness_rate = if std::env::var_os("BENCH_FRESHNESS_RATE").is_some() {
            freshness_rate
        } else {
            0
        };
        measure_and_report(
            search_index,
            store,
            &data_dir,
            iterations,
            &runtime,
            reuse_freshness_rate,
            freshness_secs,
        );
        return;
    }
    let (search_index, build) =
        build_store_and_index(&store, &index_directory, report_count, &runtime);
    let last_seq = store.last_seq().expect("last seq");
    assert_eq!(last_seq, report_count as u64);
    let indexed = search_index.searcher().num_docs();
    assert_eq!(indexed, report_count as u64);
    let index_bytes = directory_size(&index_directory);
    println!(
        "store: {report_count} reports generated, validated, compressed and committed in {:.1} s ({:.0} reports/s); sled {:.0} MiB",
        build.stored.as_secs_f64(),
        report_count as f64 / build.stored.as_secs_f64(),
        store.size_on_disk().unwrap_or(0) as f64 / 1048576.0
    );
    println!(
        "index (tailing the log during the load): all {indexed} searchable after {:.1} s = {:.0} reports/s sustained, \
         {:.1} s after the last report was stored; final commit and merges done after {:.1} s",
        build.indexed.as_secs_f64(),
        indexed as f64 / build.indexed.as_secs_f64(),
        (build.indexed - build.stored).as_secs_f64(),
        build.merged.as_secs_f64(),
    );
    println!(
        "index size: {:.0} MiB on disk = {:.0} B/report; {} segments",
        index_bytes as f64 / 1048576.0,
        index_bytes as f64 / indexed.max(1) as f64,
        search_index.searcher().segment_readers().len(),
    );

    // 2b. A rebuild from the finished store, as `reportstore reindex` does it (reads cold).
    if env_number("BENCH_SEARCH_REBUILD", 1) == 1 {
        let rebuilt_directory = data_dir.join("rebuilt-index");
        let summary =
            reportstore::index::reindex(&store, &rebuilt_directory, IndexerConfig::default())
                .expect("reindex");
        println!(
            "rebuild (reportstore reindex): {} reports in {:.1} s = {:.0} reports/s, merges included; {:.0} MiB = {:.0} B/report",
            summary.documents,
            summary.seconds,
            summary.documents as f64 / summary.seconds,
            summary.size_on_disk_bytes as f64 / 1048576.0,
            summary.size_on_disk_bytes as f64 / summary.documents.max(1) as f64,
        );
        let _ = std::fs::remove_dir_all(&rebuilt_directory);
    }

    measure_and_report(
        search_index,
        store,
        &data_dir,
        iterations,
        &runtime,
        freshness_rate,
        freshness_secs,
    );
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// Steps 3 and 4 on a built store and index; a zero `freshness_rate` skips the freshness run.
fn measure_and_report(
    search_index: SearchIndex,
    store: Arc<Store>,
    data_dir: &Path,
    iterations: usize,
    runtime: &tokio::runtime::Runtime,
    freshness_rate: usize,
    freshness_secs: usize,
) {
    let last_seq = store.last_seq().expect("last seq");
    // 3a. Latency in process: tantivy directly, then the library's search.
    // `BENCH_SEARCH_IN_PROCESS=0` runs only the warm-up rounds here (the totals are still
    // checked over HTTP), for quick re-timings of the HTTP-against-direct figures.
    let in_process = env_number("BENCH_SEARCH_IN_PROCESS", 1) == 1;
    let mut figures = measure_in_process(
        &search_index,
        &store,
        if in_process { iterations } else { 0 },
    );
    if in_process {
        print_hit_costs(&search_index, &store);
    }
    // The store goes (sled allows one process); the index stays open for the direct runs
    // timed beside the server's answers.
    drop(store);

    // 3b. Latency over HTTP, and 4. freshness, against a real server process.
    let server = Server::start(data_dir, &[], Duration::from_secs(300));
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    runtime.block_on(async {
        let health = health(&client, &server.base_url).await;
        assert_eq!(
            health["index"]["indexed_seq"], last_seq,
            "the server resumes from the index: {health}"
        );
    });
    measure_http(&search_index, &server.base_url, &mut figures, iterations);
    drop(search_index);
    print_latencies(&figures, iterations);
    print_http_split(&figures);
    let freshness_p99 = if freshness_rate > 0 {
        let freshness = runtime.block_on(freshness_run(
            &client,
            &server.base_url,
            freshness_rate,
            freshness_secs,
        ));
        server.stop();
        Some(report_freshness(
            data_dir,
            &freshness,
            freshness_rate,
            freshness_secs,
        ))
    } else {
        server.stop();
        None
    };
    let filtered_phrase_p99 = figures
        .iter()
        .find(|figure| figure.name == "filtered phrase")
        .map_or(Duration::ZERO, |figure| percentile(&figure.http, 0.99));
    let over_ratio = within_ratio_verdict(&figures, |figure| &figure.direct_beside_http);
    if in_process {
        println!(
            "http p99 within 1.5x of direct on the search threads (MT, in process): {}",
            within_ratio_verdict(&figures, |figure| &figure.direct_threads)
        );
        println!(
            "http p99 within 1.5x of tantivy doing the same answer's parts (+facets, in process): {}",
            within_ratio_verdict(&figures, |figure| &figure.direct_full)
        );
    }
    let freshness_target = match freshness_p99 {
        Some(p99) => format!(
            "freshness p99 {:.0} ms (< 1000 ms: {})",
            milliseconds(p99),
            if p99 < Duration::from_secs(1) {
                "met"
            } else {
                "missed"
            }
        ),
        None => "freshness not measured".to_string(),
    };
    println!(
        "\ntargets: filtered phrase http p99 {:.1} ms (< 50 ms: {}); http p99 within 1.5x of direct p99 \
         (timed in turns): {}; \
         {freshness_target}",
        milliseconds(filtered_phrase_p99),
        if filtered_phrase_p99.is_zero() {
            "not timed"
        } else if filtered_phrase_p99 < Duration::from_millis(50) {
            "met"
        } else {
            "missed"
        },
        over_ratio,
    );
}

/// "met for every query", or the queries whose HTTP p99 is over 1.5x the baseline's p99.
fn within_ratio_verdict(
    figures: &[QueryFigures],
    baseline: impl Fn(&QueryFigures) -> &[Duration],
) -> String {
    let over: Vec<&str> = figures
        .iter()
        .filter(|figure| {
            percentile(&figure.http, 0.99).as_secs_f64()
                > 1.5 * percentile(baseline(figure), 0.99).as_secs_f64()
        })
        .map(|figure| figure.name)
        .collect();
    if over.is_empty() {
        "met for every query".to_string()
    } else {
        format!("missed for {}", over.join(", "))
    }
}

/// Each freshness report's lag, from its 201 to the first `/health` poll that covered its seq
/// (read from the store once the server has stopped); prints them and answers the p99.
fn report_freshness(
    data_dir: &Path,
    freshness: &FreshnessRun,
    freshness_rate: usize,
    freshness_secs: usize,
) -> Duration {
    let store = Store::open(&data_dir.join("store"), &StoreConfig::default()).expect("store");
    let mut lags = Vec::with_capacity(freshness.acknowledged.len());
    for (id, acknowledged_at) in &freshness.acknowledged {
        let seq = store.report_record(id).expect("read").expect("stored").seq;
        let first_poll_after = freshness
            .polls
            .partition_point(|(polled_at, _)| polled_at < acknowledged_at);
        let visible_at = freshness.polls[first_poll_after..]
            .iter()
            .find(|(_, indexed_seq)| *indexed_seq >= seq)
            .map(|(polled_at, _)| *polled_at);
        lags.push(visible_at.map_or(Duration::from_secs(3600), |visible_at| {
            visible_at - *acknowledged_at
        }));
    }
    lags.sort();
    println!(
        "\nfreshness at {freshness_rate} reports/s for {freshness_secs} s ({} reports, {} answers 503 and retried; \
         201 -> searchable, /health polled every 5 ms): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         time to 201 from the scheduled send p50 {:.1} ms, p99 {:.1} ms",
        freshness.acknowledged.len(),
        freshness.refusals.len(),
        milliseconds(percentile(&lags, 0.5)),
        milliseconds(percentile(&lags, 0.99)),
        milliseconds(lags.last().copied().unwrap_or_default()),
        milliseconds(percentile(&freshness.ingest_latencies, 0.5)),
        milliseconds(percentile(&freshness.ingest_latencies, 0.99)),
    );
    if !freshness.refusals.is_empty() {
        let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut per_second: std::collections::BTreeMap<u64, usize> = Default::default();
        for (refused_at, detail) in &freshness.refusals {
            *reasons.entry(detail.as_str()).or_default() += 1;
            *per_second.entry(refused_at.as_secs()).or_default() += 1;
        }
        println!("503 answers by reason: {reasons:?}");
        println!("503 answers by second of the run: {per_second:?}");
    }
    percentile(&lags, 0.99)
}

fn print_latencies(figures: &[QueryFigures], iterations: usize) {
    println!(
        "\nquery latency in process, {iterations} rounds, every variant once per round (ms): direct = tantivy's \
         default search (one thread: TopDocs + Count, or Count + terms aggregations for facet-only); dirMT = \
         the same with the segments collected on the library's search threads; +facets = the same plus the \
         four facets as tantivy terms aggregations and the page's stored documents; library = \
         SearchIndex::search (facets, cursor, hits and snippets from sled)"
    );
    println!(
        "{:<30} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "query",
        "total",
        "direct50",
        "direct99",
        "dirMT50",
        "dirMT99",
        "+facet50",
        "+facet99",
        "lib50",
        "lib99",
        "lib99/dir99",
    );
    for figure in figures {
        let direct_p99 = percentile(&figure.direct, 0.99);
        let library_p99 = percentile(&figure.library, 0.99);
        println!(
            "{:<30} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.2}",
            figure.name,
            figure.total,
            milliseconds(percentile(&figure.direct, 0.5)),
            milliseconds(direct_p99),
            milliseconds(percentile(&figure.direct_threads, 0.5)),
            milliseconds(percentile(&figure.direct_threads, 0.99)),
            milliseconds(percentile(&figure.direct_full, 0.5)),
            milliseconds(percentile(&figure.direct_full, 0.99)),
            milliseconds(percentile(&figure.library, 0.5)),
            milliseconds(library_p99),
            ratio(library_p99, direct_p99),
        );
    }
    println!(
        "\nquery latency over HTTP, {iterations} rounds of one direct run and one GET /v3/search from a \
         one-thread client; then {PACED_ROUNDS} rounds with {} ms of idle before each run (light traffic) (ms)",
        PACED_PAUSE.as_millis()
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>13} {:>9} {:>9} {:>9} {:>9}",
        "query",
        "direct50",
        "direct99",
        "http50",
        "http99",
        "http99/dir99",
        "http99/MT99",
        "http99/+fac99",
        "paced d50",
        "paced d99",
        "paced h50",
        "paced h99",
    );
    for figure in figures {
        let http_p99 = percentile(&figure.http, 0.99);
        println!(
            "{:<30} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.2} {:>12.2} {:>13.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            figure.name,
            milliseconds(percentile(&figure.direct_beside_http, 0.5)),
            milliseconds(percentile(&figure.direct_beside_http, 0.99)),
            milliseconds(percentile(&figure.http, 0.5)),
            milliseconds(http_p99),
            ratio(http_p99, percentile(&figure.direct_beside_http, 0.99)),
            ratio(http_p99, percentile(&figure.direct_threads, 0.99)),
            ratio(http_p99, percentile(&figure.direct_full, 0.99)),
            milliseconds(percentile(&figure.paced_direct, 0.5)),
            milliseconds(percentile(&figure.paced_direct, 0.99)),
            milliseconds(percentile(&figure.paced_http, 0.5)),
            milliseconds(percentile(&figure.paced_http, 0.99)),
        );
    }
}

fn print_http_split(figures: &[QueryFigures]) {
    println!(
        "\nwhere the HTTP time goes (ms): search = the server's own took_ms (collection, facets, hits), \
         rest = the client's wait minus it (HTTP both ways, serializing, hand-offs); slowest 1% = the \
         mean split of the slowest 1% of requests"
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "query", "answer B", "search50", "search99", "rest50", "rest99", "slow srch", "slow rest",
    );
    for figure in figures {
        println!(
            "{:<30} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            figure.name,
            figure.http_answer_bytes,
            milliseconds(percentile(&figure.http_server_search, 0.5)),
            milliseconds(percentile(&figure.http_server_search, 0.99)),
            milliseconds(percentile(&figure.http_rest, 0.5)),
            milliseconds(percentile(&figure.http_rest, 0.99)),
            milliseconds(figure.http_slowest_split.0),
            milliseconds(figure.http_slowest_split.1),
        );
    }
}

/// `numerator / denominator`, or 0 when the denominator was not timed (empty figures).
fn ratio(numerator: Duration, denominator: Duration) -> f64 {
    if denominator.is_zero() {
        return 0.0;
    }
    numerator.as_secs_f64() / denominator.as_secs_f64()
}
