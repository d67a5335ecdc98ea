//! The response envelope `{"code", "message", "results"}` of every answer, and
//! how service errors map to HTTP status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use wa_device_core::{ErrorCode, ServiceError};

/// The code of every successful answer.
pub const SUCCESS: &str = "SUCCESS";

/// Every JSON answer: `code` is `SUCCESS` or an upper-case error code,
/// `results` the payload (`null` on errors and on answers without one).
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// `SUCCESS`, or an error code such as `NOT_FOUND` or `INVALID_ID`.
    pub code: String,
    pub message: String,
    pub results: T,
}

impl<T: Serialize> Envelope<T> {
    pub fn success(message: impl Into<String>, results: T) -> Envelope<T> {
        Envelope {
            code: SUCCESS.to_owned(),
            message: message.into(),
            results,
        }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// An answer whose `results` is always `null` (logout, delete, errors).
#[derive(Debug, Serialize, ToSchema)]
pub struct NullEnvelope {
    /// `SUCCESS`, or an error code such as `NOT_FOUND` or `INVALID_ID`.
    pub code: String,
    pub message: String,
    /// Always `null`.
    #[schema(value_type = Option<String>)]
    pub results: Option<()>,
}

/// An error answer: status code plus `{"code", "message", "results": null}`.
/// Messages come from the core (written from non-secret facts) or from this
/// crate; no secret is ever formatted into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn unauthorized() -> ApiError {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "HTTP Basic authentication required",
        )
    }

    pub fn route_not_found() -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
    }

    pub fn method_not_allowed() -> ApiError {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "this route does not accept that method",
        )
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than {limit} bytes"),
        )
    }
}

/// The HTTP status of each core error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::InvalidId
        | ErrorCode::InvalidPhone
        | ErrorCode::InvalidLabel
        | ErrorCode::InvalidSetting => StatusCode::BAD_REQUEST,
        ErrorCode::AlreadyExists
        | ErrorCode::Busy
        | ErrorCode::NoCredentials
        | ErrorCode::LoginCancelled
        | ErrorCode::SessionDamaged => StatusCode::CONFLICT,
        ErrorCode::KeyringUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::WhatsappError => StatusCode::BAD_GATEWAY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> ApiError {
        ApiError {
            status: status_of(err.code),
            code: err.code.as_str().to_ascii_uppercase(),
            message: err.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = NullEnvelope {
            code: self.code,
            message: self.message,
            results: None,
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_codes_become_upper_case_codes_with_a_status() {
        let err: ApiError = ServiceError::not_found("x").into();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(err.code, "NOT_FOUND");
        let err: ApiError = ServiceError::new(ErrorCode::InvalidId, "bad").into();
        assert_eq!(
            (err.status, err.code.as_str()),
            (StatusCode::BAD_REQUEST, "INVALID_ID")
        );
        let err: ApiError = ServiceError::internal("db").into();
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn null_results_serialize_as_null() {
        let body = NullEnvelope {
            code: SUCCESS.into(),
            message: "Device logged out successfully".into(),
            results: None,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serializes"),
            r#"{"code":"SUCCESS","message":"Device logged out successfully","results":null}"#
        );
    }
}
