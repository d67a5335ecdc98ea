//! Checks that only make sense with the library in hand.

use std::time::Duration;

use wa_sim::{PhoneError, SimConfig, Simulator};

use crate::harness::{ClientOptions, Factory, PHONE, TestClient, new_backend};

/// QR refs expire on the simulator's clock (tokio's): pausing it and
/// jumping past the first ref's 60 s makes that ref unscannable, without
/// waiting a minute.
#[tokio::test]
async fn expired_qr_ref_is_refused() {
    let sim = Simulator::new(SimConfig::default());
    let client = TestClient::start(
        Factory::InProcess(sim.transport_factory()),
        new_backend(),
        ClientOptions::default(),
    )
    .await;
    let qr = client.next_qr().await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(sim.phone(PHONE).scan(&qr).await, Err(PhoneError::ExpiredQr));
    assert!(sim.phone(PHONE).linked_devices().is_empty());
    tokio::time::resume();
    client.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_qr_codes_are_refused() {
    let sim = Simulator::default();
    let phone = sim.phone(PHONE);
    assert_eq!(phone.scan("not a qr code").await, Err(PhoneError::MalformedQr));
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let unknown = format!("2@nothing,{key},{key},{key},1");
    assert_eq!(phone.scan(&unknown).await, Err(PhoneError::UnknownQr));
    assert_eq!(phone.enter_code("ABCD-EFGH").await, Err(PhoneError::NoPendingCode));
}
