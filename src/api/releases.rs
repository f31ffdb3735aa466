//! What consumers read: the CPAN Testers API v3 release and summary lists, `/tail/log.txt`
//! and `/v3/stats`, all served from the derived rows the committer writes with each report
//! (`store::derived`), so they never lag the documents.
//!
//! Conventions of the CPAN Testers API (`cpantesters-api.md` §1a): lists are streamed JSON
//! arrays (memory stays flat however many releases there are), an empty list is
//! `404 "No results found"`, `limit` must be a positive integer, `since` is an ISO 8601
//! date-time. Unlike the old API, `since` works on every list, `/v3/release` included: it is a
//! range scan over the releases ordered by their last change.
//!
//! Aggregates carry `Cache-Control: public, max-age=60` and a weak `ETag` derived from the
//! store's last sequence number and the request; `If-None-Match` gives 304.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::problem::ApiError;
use super::{AppState, blocking, json_response};
use crate::distinfo;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::derived::{ReleaseCounters, ReleaseSelection, ReportSummary, SummarySelection};

/// `Cache-Control` of aggregates: they change with every report.
pub const AGGREGATE_CACHE_CONTROL: &str = "public, max-age=60";
/// Bytes buffered before a chunk of a streamed list is sent.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;
/// Lines in `/tail/log.txt`.
pub const TAIL_LINES: usize = 1000;

/// Query parameters, with repeatable keys (`perl=5.36.0&perl=5.38.0`).
#[derive(Debug, Default)]
pub struct QueryParameters {
    values: BTreeMap<String, Vec<String>>,
}

impl QueryParameters {
    /// Parses an `application/x-www-form-urlencoded` query string.
    pub fn parse(raw: Option<&str>) -> Result<QueryParameters> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            let value = percent_decode(value)?;
            values.entry(key).or_default().push(value);
        }
        Ok(QueryParameters { values })
    }

    /// The single value of `name`; more than one is an error.
    pub fn single(&self, name: &str) -> Result<Option<&str>> {
        match self.values.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([value]) => Ok(Some(value.as_str())),
            Some(_) => Err(Error::invalid(
                format!("{name} may be given only once"),
                format!("/{name}"),
            )),
        }
    }

    /// Every value of a repeatable `name`.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// `limit`: a positive integer, or none.
    pub fn limit(&self) -> Result<Option<usize>> {
        let Some(text) = self.single("limit")? else {
            return Ok(None);
        };
        match text.parse::<usize>() {
            Ok(limit) if limit > 0 => Ok(Some(limit)),
            _ => Err(Error::invalid(
                format!("limit must be a positive integer, not {text:?}"),
                "/limit",
            )),
        }
    }

    /// `since`: an ISO 8601 date-time, as Unix milliseconds.
    pub fn since_ms(&self) -> Result<Option<i64>> {
        let Some(text) = self.single("since")? else {
            return Ok(None);
        };
        let time = crate::ingest::parse_timestamp(text).ok_or_else(|| {
            Error::invalid(
                format!(
                    "since must be an ISO 8601 date-time such as 2026-11-22T12:00:00Z, not {text:?}"
                ),
                "/since",
            )
        })?;
        Ok(Some((time.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// A `stable|dev` parameter.
    pub fn maturity(&self, name: &str) -> Result<Option<Maturity>> {
        match self.single(name)? {
            None => Ok(None),
            Some("stable") => Ok(Some(Maturity::Stable)),
            Some("dev") => Ok(Some(Maturity::Dev)),
            Some(other) => Err(Error::invalid(
                format!("{name} must be stable or dev, not {other:?}"),
                format!("/{name}"),
            )),
        }
    }
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| {
                        Error::invalid(format!("bad percent-encoding in {text:?}"), "/")
                    })?;
                decoded.push(hex);
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).map_err(|_| Error::invalid("query parameters must be UTF-8", "/"))
}

/// `stable` or `dev` (of a distribution or of a perl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maturity {
    /// A stable release or perl.
    Stable,
    /// A developer release or perl.
    Dev,
}

/// The Release shape of the v3 API.
#[derive(Debug, Serialize)]
pub struct ReleaseView {
    dist: String,
    version: String,
    pass: u64,
    fail: u64,
    na: u64,
    unknown: u64,
}

impl From<ReleaseCounters> for ReleaseView {
    fn from(counters: ReleaseCounters) -> Self {
        let [pass, fail, na, unknown] = counters.totals();
        ReleaseView {
            dist: counters.dist,
            version: counters.version,
            pass,
            fail,
            na,
            unknown,
        }
    }
}

/// The ReportSummary shape of the v3 API.
#[derive(Debug, Serialize)]
pub struct SummaryView {
    guid: String,
    date: String,
    grade: String,
    reporter: String,
    dist: String,
    version: String,
    platform: String,
    perl: String,
    osname: String,
    osvers: String,
}

impl From<ReportSummary> for SummaryView {
    fn from(summary: ReportSummary) -> Self {
        SummaryView {
            guid: summary.guid.hyphenated().to_string(),
            date: summary.date,
            grade: summary.grade,
            reporter: summary.reporter,
            dist: summary.dist,
            version: summary.version,
            platform: summary.platform,
            perl: summary.perl,
            osname: summary.osname,
            osvers: summary.osvers,
        }
    }
}

/// A weak ETag for an aggregate: the store's last seq and the request.
fn aggregate_etag(last_seq: u64, uri: &Uri) -> String {
    let digest = Sha256::digest(uri.to_string().as_bytes());
    format!("W/\"{last_seq}-{}\"", super::v3::hex(&digest[..8]))
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == etag.trim_start_matches("W/")
            })
        })
}

fn with_cache_headers(mut response: Response, etag: &str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(AGGREGATE_CACHE_CONTROL),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

fn no_results() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({ "errors": [{ "message": "No results found", "path": "/" }] }),
    )
}

/// Streams the items `produce` visits as a JSON array, produced on a blocking thread. The
/// status is decided by the first chunk: an empty list is 404, an error before the first item
/// is that error; an error after it can only cut the stream short (and is logged).
async fn stream_json_array<T, P>(
    store: std::sync::Arc<Store>,
    produce: P,
) -> Result<Response, ApiError>
where
    T: Serialize,
    P: FnOnce(&Store, &mut dyn FnMut(&T) -> Result<bool>) -> Result<()> + Send + 'static,
{
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buffer: Vec<u8> = Vec::with_capacity(STREAM_CHUNK_BYTES + 4096);
        let mut count = 0usize;
        let mut receiver_gone = false;
        let mut emit = |item: &T| -> Result<bool> {
            buffer.push(if count == 0 { b'[' } else { b',' });
            serde_json::to_writer(&mut buffer, item)
                .map_err(|error| Error::Internal(format!("serialising a list item: {error}")))?;
            count += 1;
            if buffer.len() >= STREAM_CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::take(&mut buffer));
                if sender.blocking_send(Ok(chunk)).is_err() {
                    receiver_gone = true;
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let outcome = produce(&store, &mut emit);
        if receiver_gone {
            return;
        }
        match outcome {
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
            }
            Ok(()) if count == 0 => {}
            Ok(()) => {
                buffer.push(b']');
                let _ = sender.blocking_send(Ok(Bytes::from(buffer)));
            }
        }
    });
    let first = match receiver.recv().await {
        None => return Ok(no_results()),
        Some(Err(error)) => return Err(ApiError(error)),
        Some(Ok(chunk)) => chunk,
    };
    let body = Body::from_stream(FirstThen {
        first: Some(first),
        rest: receiver,
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A streamed list: the chunk already received, then the rest. A mid-stream error ends the
/// body early, so the client sees truncated JSON rather than a complete-looking wrong list.
struct FirstThen {
    first: Option<Bytes>,
    rest: mpsc::Receiver<Result<Bytes>>,
}

impl futures_core::Stream for FirstThen {
    type Item = std::result::Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(first)));
        }
        match self.rest.poll_recv(context) {
            std::task::Poll::Ready(Some(Ok(chunk))) => std::task::Poll::Ready(Some(Ok(chunk))),
            std::task::Poll::Ready(Some(Err(error))) => {
                tracing::error!(%error, "streamed list failed after it started");
                std::task::Poll::Ready(Some(Err(std::io::Error::other(error.to_string()))))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

async fn since_seq(state: &AppState, parameters: &QueryParameters) -> Result<u64> {
    let Some(since_ms) = parameters.since_ms()? else {
        return Ok(1);
    };
    let store = state.store.clone();
    blocking(move || store.first_seq_at_or_after(since_ms)).await
}

async fn current_etag(state: &AppState, uri: &Uri) -> Result<String> {
    let store = state.store.clone();
    let last_seq = blocking(move || store.last_seq()).await?;
    Ok(aggregate_etag(last_seq, uri))
}

/// The ETag of the current `last_seq` for `uri`, and the 304 to answer when the client
/// already holds it (`If-None-Match`).
async fn etag_or_not_modified(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(String, Option<Response>)> {
    let etag = current_etag(state, uri).await?;
    if not_modified(headers, &etag) {
        let response = with_cache_headers(StatusCode::NOT_MODIFIED.into_response(), &etag);
        return Ok((etag, Some(response)));
    }
    Ok((etag, None))
}

/// The conditional GET every aggregate list shares: the ETag of the current `last_seq`, 304
/// when the client holds it, otherwise the items `produce` visits, streamed as a JSON array,
/// with the cache headers.
async fn cached_list<T, P>(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    produce: P,
) -> Result<Response, ApiError>
where
    T: Serialize,
    P: FnOnce(&Store, &mut dyn FnMut(&T) -> Result<bool>) -> Result<()> + Send + 'static,
{
    let (etag, not_modified) = etag_or_not_modified(state, uri, headers).await?;
    if let Some(response) = not_modified {
        return Ok(response);
    }
    let response = stream_json_array(state.store.clone(), produce).await?;
    Ok(with_cache_headers(response, &etag))
}

async fn release_list(
    state: AppState,
    uri: Uri,
    headers: HeaderMap,
    raw_query: Option<String>,
    selection: ReleaseSelection,
) -> Result<Response, ApiError> {
    let parameters = QueryParameters::parse(raw_query.as_deref())?;
    let limit = parameters.limit()?.unwrap_or(usize::MAX);
    let maturity = parameters.maturity("maturity")?;
    let since_seq = since_seq(&state, &parameters).await?;
    cached_list(&state, &uri, &headers, move |store, emit| {
        let mut remaining = limit;
        store.visit_releases(&selection, since_seq, &mut |counters| {
            let wanted = match maturity {
                None => true,
                Some(Maturity::Dev) => counters.dev_dist,
                Some(Maturity::Stable) => !counters.dev_dist,
            };
            if !wanted {
                return Ok(true);
            }
            if !emit(&ReleaseView::from(counters))? {
                return Ok(false);
            }
            remaining -= 1;
            Ok(remaining > 0)
        })
    })
    .await
}

/// `GET /v3/release`: every release (the MetaCPAN bulk feed); `since` reads only the
/// releases changed after it.
pub async fn all_releases(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    release_list(state, uri, headers, query, ReleaseSelection::All).await
}

/// `GET /v3/release/dist/{dist}`.
pub async fn dist_releases(
    State(state): State<AppState>,
    Path(dist): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    release_list(state, uri, headers, query, ReleaseSelection::Dist(dist)).await
}

/// `GET /v3/release/author/{author}`.
pub async fn author_releases(
    State(state): State<AppState>,
    Path(author): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    release_list(
        state,
        uri,
        headers,
        query,
        ReleaseSelection::Author(author.to_ascii_uppercase()),
    )
    .await
}

/// `GET /v3/release/dist/{dist}/{version}`: one Release object, 404 `Not found`.
pub async fn one_release(
    State(state): State<AppState>,
    Path((dist, version)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let parameters = QueryParameters::parse(query.as_deref())?;
    parameters.limit()?;
    let maturity = parameters.maturity("maturity")?;
    let since_seq = since_seq(&state, &parameters).await?;
    let (etag, not_modified) = etag_or_not_modified(&state, &uri, &headers).await?;
    if let Some(response) = not_modified {
        return Ok(response);
    }
    let store = state.store.clone();
    let counters = blocking(move || store.release(&dist, &version)).await?;
    let counters = counters.filter(|counters| {
        counters.last_seq >= since_seq
            && match maturity {
                None => true,
                Some(Maturity::Dev) => counters.dev_dist,
                Some(Maturity::Stable) => !counters.dev_dist,
            }
    });
    let Some(counters) = counters else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            json!({ "errors": [{ "message": "Not found", "path": "/" }] }),
        ));
    };
    let response = json_response(
        StatusCode::OK,
        serde_json::to_value(ReleaseView::from(counters)).unwrap_or_default(),
    );
    Ok(with_cache_headers(response, &etag))
}

async fn summary_list(
    state: AppState,
    uri: Uri,
    headers: HeaderMap,
    raw_query: Option<String>,
    selection: SummarySelection,
) -> Result<Response, ApiError> {
    let parameters = QueryParameters::parse(raw_query.as_deref())?;
    let grade = parameters.single("grade")?.map(str::to_string);
    if let Some(grade) = &grade
        && !crate::store::derived::GRADES.contains(&grade.as_str())
    {
        return Err(Error::invalid(
            format!("grade must be one of pass, fail, na, unknown, not {grade:?}"),
            "/grade",
        )
        .into());
    }
    let perls: Vec<String> = parameters.all("perl").to_vec();
    let osnames: Vec<String> = parameters.all("osname").to_vec();
    let perl_maturity = parameters.maturity("perl_maturity")?;
    let limit = parameters.limit()?.unwrap_or(usize::MAX);
    if matches!(selection, SummarySelection::All) && perls.is_empty() && osnames.is_empty() {
        return Err(Error::invalid("at least one of perl or osname is required", "/").into());
    }
    let since_seq = since_seq(&state, &parameters).await?;
    cached_list(&state, &uri, &headers, move |store, emit| {
        let mut remaining = limit;
        store.visit_summaries(&selection, since_seq, &mut |summary| {
            if grade.as_ref().is_some_and(|grade| *grade != summary.grade)
                || (!perls.is_empty() && !perls.contains(&summary.perl))
                || (!osnames.is_empty() && !osnames.contains(&summary.osname))
            {
                return Ok(true);
            }
            if let Some(maturity) = perl_maturity {
                let devel = distinfo::classify_perl_version(&summary.perl).devel;
                if devel != (maturity == Maturity::Dev) {
                    return Ok(true);
                }
            }
            if !emit(&SummaryView::from(summary))? {
                return Ok(false);
            }
            remaining -= 1;
            Ok(remaining > 0)
        })
    })
    .await
}

/// `GET /v3/summary`: needs `perl` or `osname`.
pub async fn all_summaries(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    summary_list(state, uri, headers, query, SummarySelection::All).await
}

/// `GET /v3/summary/{dist}`.
pub async fn dist_summaries(
    State(state): State<AppState>,
    Path(dist): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    summary_list(state, uri, headers, query, SummarySelection::Dist(dist)).await
}

/// `GET /v3/summary/{dist}/{version}`.
pub async fn release_summaries(
    State(state): State<AppState>,
    Path((dist, version)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    summary_list(
        state,
        uri,
        headers,
        query,
        SummarySelection::DistVersion(dist, version),
    )
    .await
}

/// One line of `/tail/log.txt`, in the legacy format:
/// `[created] [tester name] [grade] [AUTHOR/filename] [archname] [perl-vX] [guid] [created]`.
pub fn tail_line(summary: &ReportSummary) -> String {
    let name = summary
        .reporter
        .strip_prefix('"')
        .and_then(|rest| rest.split_once('"'))
        .map_or(summary.reporter.as_str(), |(name, _)| name);
    let path = summary.path.clone().unwrap_or_else(|| {
        format!(
            "{}/{}-{}.tar.gz",
            summary.author.as_deref().unwrap_or("UNKNOWN"),
            summary.dist,
            summary.version
        )
    });
    format!(
        "[{created}] [{name}] [{grade}] [{path}] [{arch}] [perl-v{perl}] [{guid}] [{created}]",
        created = summary.created,
        grade = summary.grade,
        arch = summary.platform,
        perl = summary.perl,
        guid = summary.guid.hyphenated(),
    )
}

/// `GET /tail/log.txt`: the last 1000 Perl 5 reports, newest first.
pub async fn tail_log(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (etag, not_modified) = etag_or_not_modified(&state, &uri, &headers).await?;
    if let Some(response) = not_modified {
        return Ok(response);
    }
    let store = state.store.clone();
    let text = blocking(move || {
        // Scan a little further than needed: Perl 6 reports are skipped.
        let summaries = store.latest_summaries(TAIL_LINES * 2)?;
        let now = crate::ingest::format_timestamp(time::OffsetDateTime::now_utc());
        let mut text = format!("The last {TAIL_LINES} reports as of {now}:\n");
        for summary in summaries
            .iter()
            .filter(|summary| summary.perl.starts_with('5'))
            .take(TAIL_LINES)
        {
            text.push_str(&tail_line(summary));
            text.push('\n');
        }
        Ok(text)
    })
    .await?;
    let mut response =
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    response = with_cache_headers(response, &etag);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60, must-revalidate"),
    );
    Ok(response)
}

/// `GET /v3/stats?period=day|month&since=YYYY-MM-DD&until=YYYY-MM-DD`: report counts by
/// grade, OS and perl version per day or month (by the reports' `created` date).
pub async fn stats(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let parameters = QueryParameters::parse(query.as_deref())?;
    let monthly = match parameters.single("period")? {
        None | Some("day") => false,
        Some("month") => true,
        Some(other) => {
            return Err(Error::invalid(
                format!("period must be day or month, not {other:?}"),
                "/period",
            )
            .into());
        }
    };
    let day_parameter = |name: &str, default: &str| -> Result<String> {
        let text = parameters.single(name)?.unwrap_or(default);
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let valid = digits.len() == 8
            && text.len() == 10
            && text.as_bytes()[4] == b'-'
            && text.as_bytes()[7] == b'-';
        if !valid {
            return Err(Error::invalid(
                format!("{name} must be a date YYYY-MM-DD, not {text:?}"),
                format!("/{name}"),
            ));
        }
        Ok(digits)
    };
    let first_day = day_parameter("since", "1970-01-01")?;
    let last_day = day_parameter("until", "9999-12-31")?;
    let (etag, not_modified) = etag_or_not_modified(&state, &uri, &headers).await?;
    if let Some(response) = not_modified {
        return Ok(response);
    }
    let store = state.store.clone();
    let rows = blocking(move || store.daily_stats(&first_day, &last_day)).await?;
    let mut periods: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> = BTreeMap::new();
    for (day, dimension, value, count) in rows {
        let period = if monthly {
            format!("{}-{}", &day[..4], &day[4..6])
        } else {
            format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..8])
        };
        *periods
            .entry(period)
            .or_default()
            .entry(dimension)
            .or_default()
            .entry(value)
            .or_default() += count;
    }
    if periods.is_empty() {
        return Ok(no_results());
    }
    let body: Vec<serde_json::Value> = periods
        .into_iter()
        .map(|(period, dimensions)| {
            let total: u64 = dimensions
                .get("grade")
                .map_or(0, |grades| grades.values().sum());
            json!({
                "period": period,
                "total": total,
                "grade": dimensions.get("grade").cloned().unwrap_or_default(),
                "osname": dimensions.get("osname").cloned().unwrap_or_default(),
                "perl": dimensions.get("perl").cloned().unwrap_or_default(),
            })
        })
        .collect();
    Ok(with_cache_headers(
        json_response(StatusCode::OK, json!(body)),
        &etag,
    ))
}
