//! `GET /v3/search`: full-text search over report output with filters, facets and a cursor.
//!
//! The query string is validated into a [`SearchRequest`] (every refusal is a 400 naming the
//! parameter, in the v3 error shape); the search itself runs on the search threads
//! ([`run_on_search_threads`]), at most one per core at a time. See `index::query` for the
//! parameters and the language of `q`.

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::ApiError;
use crate::error::Error;
use crate::index::SearchRequest;
use crate::index::threads::run_on_search_threads;

/// The decoded `name=value` pairs of the query string, in order, repeated names kept.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, Error> {
    if uri.query().is_none() {
        return Ok(Vec::new());
    }
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|rejection| {
            Error::invalid(format!("the query string does not decode: {rejection}"), "")
        })
}

/// `GET /v3/search?q=...&grade=fail&...`: 200 with `total`, `hits`, `facets` and
/// `next_cursor`; 400 for a malformed query, an unknown field or parameter, a bad cursor or a
/// window too deep.
pub async fn search(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let pairs = query_pairs(&uri)?;
    let request = SearchRequest::from_query_pairs(&pairs)?;
    let _permit = state.search.search_permit().await?;
    let search_index = state.search.clone();
    let store = state.store.clone();
    // The answer is serialized where it was made, so the async runtime only writes bytes.
    let body = run_on_search_threads(move || {
        let answer = search_index.search(&store, &request)?;
        serde_json::to_vec(&answer)
            .map_err(|error| Error::Internal(format!("search answer did not serialize: {error}")))
    })
    .await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
