//! The legacy Metabase API as Metabase::Client::Simple speaks it (`metabase.md`): `POST
//! submit/CPAN-Testers-Report`, `POST register`, `GET`/`HEAD guid/<guid>`. Mounted under
//! `/api/v1/`, `/beta/` and the bare root, because the client resolves these relative paths
//! against whatever URL the tester configured.
//!
//! Content-Type is ignored (the clients send `application/octet-stream`). Errors use the
//! `{"error": ...}` shape with `Content-Type: application/json` exactly.
//!
//! Registration policy: registration is open (the client registers itself on first use and
//! cannot be changed). A new profile is stored. Registering an existing profile again with the
//! same secret succeeds (and updates name and e-mail); with a different secret it is refused
//! with 400 "already registered", so nobody can take over a profile by re-registering it.

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use uuid::Uuid;

use super::problem::LegacyError;
use super::{AppState, blocking, discard_body, json_response, read_body};
use crate::error::{Error, Result};
use crate::ingest::auth::{self, BasicCredentials};
use crate::ingest::metabase::{self, Reporter};
use crate::store::UserRecord;
use crate::store::committer::{PutReportOutcome, PutUserOutcome};

/// The three legacy routes, relative to their mount point.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/submit/{fact_type}", post(submit))
        .route("/register", post(register))
        .route("/guid/{guid}", get(guid))
}

/// `Location` for a guid: the request path with its last segments replaced, as the
/// cpantesters shim did (`/api/v1/submit/CPAN-Testers-Report` → `/api/v1/guid/<guid>`).
fn guid_location(request_path: &str, suffix: &str, guid: &Uuid) -> String {
    let prefix = request_path.strip_suffix(suffix).unwrap_or("/");
    let prefix = prefix.trim_end_matches('/');
    format!("{prefix}/guid/{}", guid.hyphenated())
}

fn created_with_location(status: StatusCode, guid: &Uuid, location: &str) -> Response {
    let mut response = json_response(status, json!({ "guid": guid.hyphenated().to_string() }));
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn submit(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(fact_type): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LegacyError> {
    let received_at = time::OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    // Authenticate before reading the body: an unknown client costs no buffering or parsing.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let authenticated = match auth::parse_basic_authorization(authorization) {
        Ok(credentials) => authenticate(&state, &credentials).await,
        Err(error) => Err(error),
    };
    let submitter = match authenticated {
        Ok(user) => user,
        Err(error) => {
            discard_body(body, state.limits.max_body_bytes).await;
            return Err(error.into());
        }
    };
    let _permit = match state
        .role
        .ensure_leader()
        .and_then(|()| state.ingest_permit())
    {
        Ok(permit) => permit,
        Err(error) => {
            discard_body(body, state.limits.max_body_bytes).await;
            return Err(error.into());
        }
    };
    let body = read_body(body, &headers, state.limits.max_body_bytes).await?;

    let store = state.store.clone();
    let prepared = blocking(move || {
        let submission = metabase::parse_submission(&body, &fact_type)?;
        let creator = submission.header().creator;
        // The report is attributed to its creator's profile; a relay may submit for others.
        let profile = if creator == submitter.guid {
            Some(submitter)
        } else {
            store.user(&creator)?
        };
        let reporter = profile.map(|user| Reporter {
            name: user.name,
            email: user.email,
        });
        let prepared =
            metabase::prepare_submission(&submission, reporter.as_ref(), &body, received_at)?;
        store.warm_for_report(
            &prepared.id,
            &prepared.summary,
            prepared.fact_frame.is_some(),
        );
        Ok(prepared)
    })
    .await?;
    let guid = prepared.id;
    let grade = prepared.summary.grade.clone();
    let outcome = state.committer.put_report(prepared).await?;
    let (PutReportOutcome::Stored { seq } | PutReportOutcome::AlreadyStored { seq }) = outcome;
    state.replication.await_replicas(seq).await?;
    let location = guid_location(
        uri.path(),
        &format!("/submit/{}", metabase::REPORT_FACT_TYPE),
        &guid,
    );
    let status = match outcome {
        PutReportOutcome::Stored { seq } => {
            crate::metrics::report_stored("metabase", &grade, started.elapsed());
            tracing::info!(%guid, seq, protocol = "metabase", "report stored");
            StatusCode::CREATED
        }
        PutReportOutcome::AlreadyStored { seq } => {
            crate::metrics::report_duplicate("metabase");
            tracing::info!(%guid, seq, protocol = "metabase", "report already stored");
            StatusCode::OK
        }
    };
    Ok(super::v3::with_seq_header(
        created_with_location(status, &guid, &location),
        outcome,
    ))
}

/// Checks Basic credentials against the stored profile; a verified credential is cached.
async fn authenticate(state: &AppState, credentials: &BasicCredentials) -> Result<UserRecord> {
    let user_guid = credentials.user;
    let user = match state.store.cached_user(&user_guid) {
        Some(user) => user,
        None => {
            let store = state.store.clone();
            blocking(move || store.user(&user_guid))
                .await?
                .ok_or_else(|| Error::Unauthorized(format!("User {user_guid} unrecognized")))?
        }
    };
    if state
        .credentials
        .is_fresh(&user.guid, &user.secret_hash, &credentials.password)
    {
        return Ok(user);
    }
    let _permit = state.verification_permit().await?;
    let stored_hash = user.secret_hash.clone();
    let password = credentials.password.clone();
    let verified = blocking(move || Ok(auth::verify_secret(&stored_hash, &password))).await?;
    if !verified {
        tracing::info!(user = %user.guid, "metabase authentication failed");
        return Err(Error::Unauthorized(format!(
            "authentication failed for user {}: wrong secret",
            user.guid
        )));
    }
    state
        .credentials
        .remember(&user.guid, &user.secret_hash, &credentials.password);
    Ok(user)
}

async fn register(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, LegacyError> {
    if let Err(error) = state.role.ensure_leader() {
        discard_body(body, state.limits.max_body_bytes).await;
        return Err(error.into());
    }
    let body = read_body(body, &headers, state.limits.max_body_bytes).await?;
    let registration = blocking(move || metabase::parse_registration(&body)).await?;
    let guid = registration.guid;
    let location = guid_location(uri.path(), "/register", &guid);
    let store = state.store.clone();
    let existing = blocking(move || store.user(&guid)).await?;

    let replace_existing = match &existing {
        None => false,
        Some(current) => {
            let _permit = state.verification_permit().await?;
            let stored_hash = current.secret_hash.clone();
            let secret = registration.secret_bytes.clone();
            let same_secret =
                blocking(move || Ok(auth::verify_secret(&stored_hash, &secret))).await?;
            if !same_secret {
                return Err(Error::invalid(
                    format!("already registered: profile {guid} exists"),
                    "",
                )
                .into());
            }
            if current.name == registration.name && current.email == registration.email {
                return Ok(created_with_location(StatusCode::CREATED, &guid, &location));
            }
            true
        }
    };
    let secret = registration.secret_bytes.clone();
    let secret_hash = blocking(move || auth::hash_secret(&secret)).await?;
    let record = UserRecord {
        guid,
        name: registration.name,
        email: registration.email,
        secret_hash,
        registered_at: crate::ingest::format_timestamp(time::OffsetDateTime::now_utc()),
    };
    match state.committer.put_user(record, replace_existing).await? {
        PutUserOutcome::Stored { seq } => {
            state.replication.await_replicas(seq).await?;
            tracing::info!(user = %guid, seq, "metabase profile registered");
            Ok(created_with_location(StatusCode::CREATED, &guid, &location))
        }
        PutUserOutcome::AlreadyExists => {
            // Another registration of this profile won the race; the client retries its submit.
            Err(Error::invalid(format!("already registered: profile {guid} exists"), "").into())
        }
    }
}

async fn guid(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Response, LegacyError> {
    let Ok(id) = Uuid::parse_str(&guid) else {
        return Err(Error::invalid(format!("invalid guid {guid:?}"), "").into());
    };
    let store = state.store.clone();
    let found = blocking(move || {
        if store.user(&id)?.is_some() {
            return Ok(Some(None));
        }
        let Some(stored) = store.report(&id)? else {
            return Ok(None);
        };
        Ok(Some(store.report_fact(&id, &stored)?))
    })
    .await?;
    match found {
        None => Err(Error::NotFound(format!("{} not found", id.hyphenated())).into()),
        Some(None) => Ok(json_response(
            StatusCode::OK,
            json!({ "guid": id.hyphenated().to_string() }),
        )),
        Some(Some(fact)) => {
            // Splice the stored bytes in unchanged: the fact is returned exactly as submitted.
            let mut body = Vec::with_capacity(fact.len() + 10);
            body.extend_from_slice(b"{\"fact\":");
            body.extend_from_slice(&fact);
            body.push(b'}');
            Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_keeps_the_mount_prefix() {
        let guid = Uuid::from_u128(1);
        let suffix = "/submit/CPAN-Testers-Report";
        assert_eq!(
            guid_location("/api/v1/submit/CPAN-Testers-Report", suffix, &guid),
            "/api/v1/guid/00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            guid_location("/submit/CPAN-Testers-Report", suffix, &guid),
            "/guid/00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            guid_location("/beta/register", "/register", &guid),
            "/beta/guid/00000000-0000-0000-0000-000000000001"
        );
    }
}
