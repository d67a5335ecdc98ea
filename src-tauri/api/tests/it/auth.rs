//! HTTP Basic authentication, the keyring-held pair, and refusing to start.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use wa_device_api::{
    ApiConfig, ApiServer, Credential, KeyringCredentialStore, StartError, parse_credentials,
};
use wa_device_core::SecretStore;

use crate::support::{OTHER_PASSWORD, OTHER_USER, PASSWORD, Rig, USER};
use wa_test_support::keyring::test_keyring;
use wa_test_support::offline::offline_service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_everything_else_needs_credentials() {
    let rig = Rig::new().await;
    let health = rig.send(rig.client.get(rig.url("/health"))).await;
    assert_eq!(health.json()["results"]["status"], "ok");
    health.expect(200, "SUCCESS");

    for (method, path) in [
        (Method::GET, "/devices"),
        (Method::POST, "/devices"),
        (Method::GET, "/devices/d1"),
        (Method::DELETE, "/devices/d1"),
        (Method::GET, "/devices/d1/login"),
        (Method::GET, "/devices/d1/login/qr.svg"),
        (Method::GET, "/devices/d1/login/qr.png"),
        (Method::POST, "/devices/d1/login/code?phone=15551234567"),
        (Method::POST, "/devices/d1/logout"),
        (Method::POST, "/devices/d1/reconnect"),
        (Method::GET, "/devices/d1/status"),
        (Method::GET, "/devices/d1/history"),
        (Method::GET, "/openapi.json"),
        (Method::GET, "/app/login"),
        (Method::GET, "/app/login-with-code?phone=15551234567"),
        (Method::GET, "/app/logout"),
        (Method::GET, "/app/reconnect"),
        (Method::GET, "/app/devices"),
        (Method::GET, "/app/status"),
    ] {
        let missing = rig
            .send(rig.client.request(method.clone(), rig.url(path)))
            .await;
        missing.expect(401, "UNAUTHORIZED");
        let challenge = missing.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");

        let wrong = rig
            .send(
                rig.client
                    .request(method.clone(), rig.url(path))
                    .basic_auth(USER, Some(OTHER_PASSWORD)),
            )
            .await;
        wrong.expect(401, "UNAUTHORIZED");
        assert!(!wrong.text.contains(OTHER_PASSWORD));
        let prefix = rig
            .send(
                rig.client
                    .request(method.clone(), rig.url(path))
                    .basic_auth(USER, Some(&PASSWORD[..PASSWORD.len() - 1])),
            )
            .await;
        assert_eq!(prefix.status, StatusCode::UNAUTHORIZED, "{path}");
        let bearer = rig
            .send(
                rig.client
                    .request(method.clone(), rig.url(path))
                    .bearer_auth(PASSWORD),
            )
            .await;
        assert_eq!(bearer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Nothing was created by the refused requests.
    assert!(rig.service.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configured_user_is_accepted_and_recorded_in_the_history() {
    let rig = Rig::new().await;
    rig.create("shared").await;
    let as_bob = rig
        .send(
            rig.client
                .post(rig.url("/devices/shared/logout"))
                .basic_auth(OTHER_USER, Some(OTHER_PASSWORD)),
        )
        .await;
    as_bob.expect(200, "SUCCESS");
    let history = rig.call(Method::GET, "/devices/shared/history").await;
    let entries = history.expect(200, "SUCCESS")["results"].clone();
    let actors: Vec<_> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actors,
        vec![
            ("create".to_owned(), "api:alice".to_owned()),
            ("logout".to_owned(), "api:bob".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_to_start_without_credentials_or_on_a_remote_address() {
    let (_dir, _secrets, service) = offline_service().await;
    let mut config = ApiConfig::new(Vec::new());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let err = ApiServer::start(service.clone(), config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::NoCredentials));
    let message = err.to_string();
    assert!(
        message.contains("--basic-auth") && message.contains("APP_BASIC_AUTH"),
        "{message}"
    );

    let mut config = ApiConfig::new(parse_credentials(&["a:b"]).unwrap());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = ApiServer::start(service.clone(), config.clone())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::RemoteNotAllowed(_)), "{err}");
    assert!(err.to_string().contains("--allow-remote"));
    config.allow_remote = true;
    config.public_url = Some("wa.example.org/admin".to_owned());
    let err = ApiServer::start(service.clone(), config.clone())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::InvalidPublicUrl(_)), "{err}");
    config.public_url = None;
    let api = ApiServer::start(service, config).await.unwrap();
    assert!(api.local_addr().ip().is_unspecified());
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_stored_in_the_keyring_authenticates() {
    let keyring: Arc<dyn SecretStore> = Arc::new(test_keyring());
    let entry = "0123456789abcdef/api/basic-auth".to_owned();
    let store = KeyringCredentialStore::new(Arc::clone(&keyring), entry.clone());
    assert_eq!(store.load().unwrap(), None);
    store
        .save(&Credential::new("admin", "from the keyring").unwrap())
        .unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.user(), "admin");
    // Stored under the folder's entry name, not the unscoped one.
    assert!(keyring.get(&entry).unwrap().is_some());
    assert!(
        keyring
            .get(wa_device_api::auth::KEYRING_ENTRY)
            .unwrap()
            .is_none()
    );

    let (_dir, _secrets, service) = offline_service().await;
    let mut config = ApiConfig::new(vec![loaded]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let api = ApiServer::start(service, config).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/devices", api.local_addr());
    let ok = client
        .get(&url)
        .basic_auth("admin", Some("from the keyring"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = client
        .get(&url)
        .basic_auth("admin", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    api.shutdown().await;

    store.clear().unwrap();
    assert_eq!(store.load().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_listening() {
    let (_dir, _secrets, service) = offline_service().await;
    let mut config = ApiConfig::new(parse_credentials(&["a:b"]).unwrap());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let api = ApiServer::start(service, config).await.unwrap();
    let addr = api.local_addr();
    let url = format!("http://{addr}/health");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::OK);
    api.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
