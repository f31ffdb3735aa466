//! The one place where errors become HTTP responses.
//!
//! Two error shapes exist because two families of clients read them:
//! * the CPAN Testers API v3 shape `{"errors":[{"message","path"}]}` ([`ApiError`]), used by
//!   every route except the legacy Metabase ones;
//! * the Metabase shape `{"error":"..."}` ([`LegacyError`]). Its `Content-Type` must be exactly
//!   `application/json`: Metabase::Client::Simple only reads `error` when it is.
//!
//! Internal errors are logged with their detail and answered with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{Error, FieldError};

/// The status code of each error kind.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::InvalidInput { .. } | Error::Validation(_) => StatusCode::BAD_REQUEST,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::StoreOpen { .. }
        | Error::Storage { .. }
        | Error::DataCorruption { .. }
        | Error::Io { .. }
        | Error::Index { .. }
        | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn public_message(error: &Error) -> String {
    let status = status_of(error);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(%error, "request failed with an internal error");
        return "internal server error".to_string();
    }
    error.to_string()
}

/// Adds the headers an error implies: `Retry-After` on 503, and `Connection: close` when the
/// request body was refused unread.
///
/// A 413 is answered before the body is read, so the server must drop the connection; without
/// `Connection: close` a keep-alive client (reqwest, LWP) puts the connection back in its pool
/// and its next request fails with a connection reset instead of an answer.
fn with_error_headers(mut response: Response, error: &Error) -> Response {
    match error {
        Error::Unavailable {
            retry_after_secs, ..
        } => {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after_secs.to_string())
                    .expect("digits are a valid header"),
            );
        }
        Error::PayloadTooLarge { .. } => {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

/// An error answered in the CPAN Testers API v3 shape.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let errors: Vec<FieldError> = match &self.0 {
            Error::Validation(violations) => violations.clone(),
            Error::InvalidInput { message, path } => vec![FieldError {
                message: message.clone(),
                path: if path.is_empty() {
                    "/".to_string()
                } else {
                    path.clone()
                },
            }],
            other => vec![FieldError {
                message: public_message(other),
                path: "/".to_string(),
            }],
        };
        let response = (status, axum::Json(json!({ "errors": errors }))).into_response();
        with_error_headers(response, &self.0)
    }
}

/// An error answered in the legacy Metabase shape.
#[derive(Debug)]
pub struct LegacyError(pub Error);

impl From<Error> for LegacyError {
    fn from(error: Error) -> Self {
        LegacyError(error)
    }
}

impl IntoResponse for LegacyError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let message = public_message(&self.0);
        let response = (status, axum::Json(json!({ "error": message }))).into_response();
        with_error_headers(response, &self.0)
    }
}
