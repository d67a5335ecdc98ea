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
    /// Errors only, and only where `code` is go-whatsapp-web-multidevice's
    /// word for the condition: this API's own, finer code (for example
    /// `INVALID_PHONE` under `VALIDATION_ERROR`, `BUSY` under
    /// `ALREADY_LOGGED_IN`). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail_code: Option<String>,
}

impl NullEnvelope {
    /// A success without a payload: `{"code":"SUCCESS","message":…,"results":null}`.
    pub fn success(message: impl Into<String>) -> NullEnvelope {
        NullEnvelope {
            code: SUCCESS.to_owned(),
            message: message.into(),
            results: None,
            detail_code: None,
        }
    }
}

impl IntoResponse for NullEnvelope {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// go-whatsapp-web-multidevice's code for an invalid request field.
pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
/// go-whatsapp-web-multidevice's code for a login on a linked device.
pub const ALREADY_LOGGED_IN: &str = "ALREADY_LOGGED_IN";

/// An error answer: status code plus `{"code", "message", "results": null}`
/// (and `detail_code` where `code` is go-whatsapp-web-multidevice's word).
/// Messages come from the core (written from non-secret facts) or from this
/// crate; no secret is ever formatted into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub detail_code: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            detail_code: None,
        }
    }

    /// A login refused because the device is linked already, in
    /// go-whatsapp-web-multidevice's words (400 `ALREADY_LOGGED_IN`); the
    /// core's code stays in `detail_code`.
    pub fn already_logged_in(err: ServiceError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: ALREADY_LOGGED_IN.to_owned(),
            message: err.message,
            detail_code: Some(upper_case(err.code)),
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

/// go-whatsapp-web-multidevice's code word for a core code, where it has
/// its own word for the same condition.
pub fn gowa_code(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::InvalidPhone => Some(VALIDATION_ERROR),
        _ => None,
    }
}

fn upper_case(code: ErrorCode) -> String {
    code.as_str().to_ascii_uppercase()
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> ApiError {
        let ours = upper_case(err.code);
        let (code, detail_code) = match gowa_code(err.code) {
            Some(theirs) => (theirs.to_owned(), Some(ours)),
            None => (ours, None),
        };
        ApiError {
            status: status_of(err.code),
            code,
            message: err.message,
            detail_code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Server-side failures are the operator's business; a client's
        // mistakes (4xx) are answered, not logged above debug.
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = %self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = %self.code, message = %self.message, "request refused");
        }
        let body = NullEnvelope {
            code: self.code,
            message: self.message,
            results: None,
            detail_code: self.detail_code,
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
        assert_eq!(err.detail_code, None);
    }

    #[test]
    fn a_bad_phone_is_gowas_validation_error_with_ours_as_detail() {
        let err: ApiError = ServiceError::new(ErrorCode::InvalidPhone, "bad phone").into();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "VALIDATION_ERROR");
        assert_eq!(err.detail_code.as_deref(), Some("INVALID_PHONE"));
        let body = serde_json::to_value(NullEnvelope {
            code: err.code,
            message: err.message,
            results: None,
            detail_code: err.detail_code,
        })
        .expect("serializes");
        assert_eq!(body["detail_code"], "INVALID_PHONE");
    }

    #[test]
    fn a_login_on_a_linked_device_is_gowas_already_logged_in() {
        let err = ApiError::already_logged_in(ServiceError::busy("linked"));
        assert_eq!(
            (err.status, err.code.as_str(), err.detail_code.as_deref()),
            (StatusCode::BAD_REQUEST, "ALREADY_LOGGED_IN", Some("BUSY"))
        );
    }

    #[test]
    fn null_results_serialize_as_null() {
        let body = NullEnvelope {
            code: SUCCESS.into(),
            message: "Device logged out successfully".into(),
            results: None,
            detail_code: None,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serializes"),
            r#"{"code":"SUCCESS","message":"Device logged out successfully","results":null}"#
        );
    }
}
