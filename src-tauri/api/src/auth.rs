//! HTTP Basic authentication: the configured `user:password` pairs, their
//! constant-time check, and the keyring entry that can hold one pair.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wa_device_core::secrets::ApiPasswordEntry;
use wa_device_core::{ErrorCode, SecretStore, ServiceError};

use crate::response::ApiError;

/// The realm announced in `WWW-Authenticate`.
pub const REALM: &str = "WA Device Admin";

/// Name of the keyring entry that held the API's `user:password` pair before
/// entries were scoped by data folder; read once, as a fallback.
pub const KEYRING_ENTRY: &str = wa_device_core::secrets::UNSCOPED_API_PASSWORD;

/// The user name paired with a password set through the keyring when none is
/// given.
pub const DEFAULT_USER: &str = "admin";

/// One accepted `user:password` pair. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    user: String,
    password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a credential list was refused. Messages never contain a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "basic auth entry {index} is not of the form user:password (a non-empty user without ':' and a non-empty password)"
    )]
    Malformed { index: usize },
}

impl Credential {
    /// `user:password`; the user may not contain `:` (Basic auth splits at
    /// the first one) and neither part may be empty.
    pub fn parse(pair: &str) -> Result<Credential, CredentialError> {
        Self::parse_at(pair, 1)
    }

    fn parse_at(pair: &str, index: usize) -> Result<Credential, CredentialError> {
        match pair.split_once(':') {
            Some((user, password))
                if !user.is_empty()
                    && !password.is_empty()
                    && !user.chars().any(char::is_control) =>
            {
                Ok(Credential {
                    user: user.to_owned(),
                    password: password.to_owned(),
                })
            }
            _ => Err(CredentialError::Malformed { index }),
        }
    }

    pub fn new(user: &str, password: &str) -> Result<Credential, CredentialError> {
        Self::parse(&format!("{user}:{password}"))
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    fn joined(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }
}

/// Parses pairs given as in go-whatsapp-web-multidevice's `APP_BASIC_AUTH`:
/// comma-separated `user:password` pairs. Each argument may itself hold
/// several pairs; empty items are ignored.
pub fn parse_credentials<S: AsRef<str>>(values: &[S]) -> Result<Vec<Credential>, CredentialError> {
    let mut out = Vec::new();
    for value in values {
        for item in value.as_ref().split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            out.push(Credential::parse_at(item, out.len() + 1)?);
        }
    }
    Ok(out)
}

/// The accepted pairs, kept as SHA-256 digests of `user:password`.
///
/// Comparing digests (always 32 bytes) instead of the pairs themselves keeps
/// the comparison's time independent of the presented pair's length, so
/// timing does not tell an attacker a password's length either.
#[derive(Clone)]
pub struct Authenticator {
    credentials: Arc<[(String, [u8; 32])]>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.credentials.len())
            .finish()
    }
}

fn digest(pair: &str) -> [u8; 32] {
    Sha256::digest(pair.as_bytes()).into()
}

impl Authenticator {
    pub fn new(credentials: Vec<Credential>) -> Authenticator {
        Authenticator {
            credentials: credentials
                .iter()
                .map(|c| (c.user.clone(), digest(&c.joined())))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// The user whose pair the `Authorization` header carries, if any.
    /// Every configured pair is compared in constant time, whatever matched
    /// before: the time taken tells neither which pair matched nor how much
    /// of a password, or of its length, was right.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Option<String> {
        let presented = digest(&decode_basic(authorization?)?);
        let mut matched: Option<String> = None;
        for (user, expected) in self.credentials.iter() {
            let equal: bool = expected.ct_eq(&presented).into();
            if equal && matched.is_none() {
                matched = Some(user.clone());
            }
        }
        matched
    }
}

fn decode_basic(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The authenticated API user; handlers record it in the history.
#[derive(Clone, Debug)]
pub struct ApiUser(pub String);

/// Middleware: 401 with `WWW-Authenticate` unless the request carries one of
/// the configured pairs.
pub async fn require_basic_auth(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.check(request.headers().get(header::AUTHORIZATION)) {
        Some(user) => {
            request.extensions_mut().insert(ApiUser(user));
            next.run(request).await
        }
        None => {
            let mut response = ApiError::unauthorized().into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"WA Device Admin\", charset=\"UTF-8\""),
            );
            response
        }
    }
}

/// The API's `user:password` pair kept in the OS keyring (see
/// [`ApiPasswordEntry`], where the entry is read and written).
#[derive(Clone)]
pub struct KeyringCredentialStore {
    entry: ApiPasswordEntry,
}

impl KeyringCredentialStore {
    /// `store` is the shell's keyring, `entry` the folder's
    /// `KeyringNames::api_password()`.
    pub fn new(store: Arc<dyn SecretStore>, entry: String) -> KeyringCredentialStore {
        KeyringCredentialStore {
            entry: ApiPasswordEntry::new(store, entry),
        }
    }

    /// The stored pair, if one is set. Errors: `keyring_unavailable`, or
    /// `internal` for an entry that is not a pair (never shown).
    pub fn load(&self) -> Result<Option<Credential>, ServiceError> {
        let Some(text) = self.entry.load()? else {
            return Ok(None);
        };
        Credential::parse(&text).map(Some).map_err(|_| {
            ServiceError::new(
                ErrorCode::Internal,
                "the keyring entry of the API password is not a user:password pair; set the password again",
            )
        })
    }

    pub fn save(&self, credential: &Credential) -> Result<(), ServiceError> {
        self.entry.save(&credential.joined())
    }

    pub fn clear(&self) -> Result<(), ServiceError> {
        self.entry.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(pair: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("header")
    }

    #[test]
    fn pairs_are_parsed_like_app_basic_auth() {
        let creds = parse_credentials(&["alice:pw1,bob:p:w2", " carol:x "]).expect("valid");
        let users: Vec<_> = creds.iter().map(|c| c.user()).collect();
        assert_eq!(users, ["alice", "bob", "carol"]);
        assert_eq!(creds[1].password, "p:w2");
    }

    #[test]
    fn malformed_pairs_are_refused_without_showing_them() {
        for bad in ["alice", ":pw", "alice:", "alice:pw,secretonly"] {
            let err = parse_credentials(&[bad]).expect_err(bad);
            assert!(!err.to_string().contains("pw"), "{err}");
            assert!(!err.to_string().contains("secretonly"), "{err}");
        }
    }

    #[test]
    fn only_a_configured_pair_passes() {
        let auth = Authenticator::new(parse_credentials(&["alice:pw1,bob:pw2"]).expect("valid"));
        assert_eq!(auth.check(Some(&basic("bob:pw2"))), Some("bob".into()));
        assert_eq!(auth.check(Some(&basic("alice:pw1"))), Some("alice".into()));
        assert_eq!(auth.check(Some(&basic("alice:pw2"))), None);
        assert_eq!(auth.check(Some(&basic("alice:pw1x"))), None);
        assert_eq!(
            auth.check(Some(&HeaderValue::from_static("Bearer x"))),
            None
        );
        assert_eq!(
            auth.check(Some(&HeaderValue::from_static("Basic %%%"))),
            None
        );
        assert_eq!(auth.check(None), None);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let credential = Credential::parse("alice:hunter2").expect("valid");
        assert!(!format!("{credential:?}").contains("hunter2"));
        let auth = Authenticator::new(vec![credential]);
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice"),
            "{shown}"
        );
    }
}
