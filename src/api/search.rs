//! `GET /v3/search`: full-text search over report output with filters, facets and a cursor.
//!
//! The query string is validated into a [`SearchRequest`] (every refusal is a 400 naming the
//! parameter, in the v3 error shape); the search itself runs in [`blocking`], at most one per
//! core at a time. See `index::query` for the parameters and the language of `q`.

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::problem::ApiError;
use super::{AppState, blocking};
use crate::error::Error;
use crate::index::SearchRequest;

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
    let answer = blocking(move || search_index.search(&store, &request)).await?;
    Ok((StatusCode::OK, axum::Json(answer)).into_response())
}
