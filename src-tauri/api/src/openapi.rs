//! The OpenAPI 3 document, generated from the route and type annotations. It
//! is served at `/openapi.json` and committed as `docs/openapi.json`; a test
//! fails when the two drift (`WA_UPDATE_OPENAPI=1` rewrites the file).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{app_routes, event_stream, revocations, routes, webhook_routes};

/// The committed document, relative to the repository root.
pub const OPENAPI_PATH: &str = "docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "WA Device Admin API",
        description = "Local REST API of WA Device Admin, compatible with go-whatsapp-web-multidevice's device endpoints. Every answer is {\"code\", \"message\", \"results\"}; every route but /health needs HTTP Basic authentication.",
        license(name = "MIT"),
    ),
    paths(
        routes::health,
        routes::openapi_json,
        routes::list_devices,
        routes::create_device,
        routes::get_device,
        routes::delete_device,
        routes::login_qr,
        routes::login_qr_svg,
        routes::login_qr_png,
        routes::login_code,
        routes::logout,
        routes::reconnect,
        routes::status,
        routes::history,
        webhook_routes::get_webhook,
        webhook_routes::set_webhook,
        app_routes::login,
        app_routes::login_with_code,
        app_routes::logout,
        app_routes::reconnect,
        app_routes::devices,
        app_routes::status,
        revocations::list,
        revocations::retry,
        revocations::forget,
        event_stream::events,
    ),
    modifiers(&BasicAuthScheme),
    tags(
        (name = "devices", description = "Devices and their sessions"),
        (name = "login", description = "Linking a device to a WhatsApp account"),
        (name = "app", description = "go-whatsapp-web-multidevice's /app routes: the device routes with the device taken from the X-Device-Id header, ?device_id=, or the only device"),
        (name = "service", description = "The server itself"),
        (name = "revocations", description = "Links whose unlink WhatsApp has not confirmed yet; the service retries them"),
        (name = "events", description = "Device events as Server-Sent Events, for scripts without a webhook"),
    )
)]
pub struct ApiDoc;

struct BasicAuthScheme;

impl Modify for BasicAuthScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic_auth",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The document as served and committed (pretty-printed, trailing newline).
pub fn document_json() -> String {
    let mut doc = ApiDoc::openapi();
    // The crate version, not a build-dependent string, so the committed file
    // only changes with the API.
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut json = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn committed_openapi_document_matches_the_code() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(super::OPENAPI_PATH);
        let expected = super::document_json();
        if std::env::var_os("WA_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &expected).expect("write the OpenAPI document");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "{} is out of date: run `make openapi` and commit the result",
            super::OPENAPI_PATH
        );
    }
}
