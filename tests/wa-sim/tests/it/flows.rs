//! Each flow drives an unmodified whatsapp-rust client against a `Target`
//! and asserts on the client's events and on the simulator's state.

use std::time::Instant;

use serde_json::Value;
use wa_sim::{Fault, LogoutReply};
use whatsapp_rust::types::events::Event;

use crate::harness::{ClientOptions, PHONE, STALL_WAIT, Target, TestClient, WAIT, new_backend};

/// Simulator events of kind `event` about `jid`.
async fn sim_events(target: &Target, event: &str, jid: &str) -> Vec<Value> {
    target
        .events()
        .await
        .into_iter()
        .filter(|e| e["event"] == event && e["jid"] == jid)
        .collect()
}

async fn handshakes_of(target: &Target, jid: &str) -> Vec<String> {
    sim_events(target, "logged_in", jid)
        .await
        .iter()
        .map(|e| e["handshake"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn refusals(target: &Target, reason: u16) -> usize {
    target
        .events()
        .await
        .iter()
        .filter(|e| e["event"] == "login_refused" && e["reason"] == reason)
        .count()
}

/// Pairs a new client by QR and waits until both sides see it connected.
pub async fn pair(
    target: &Target,
) -> (
    TestClient,
    String,
    std::sync::Arc<whatsapp_rust::wacore::store::InMemoryBackend>,
) {
    let backend = new_backend();
    let client = target.client(&backend, ClientOptions::default()).await;
    let qr = client.next_qr().await;
    let jid = target
        .scan(PHONE, &qr)
        .await
        .expect("the phone links the device");
    let connected = client
        .events
        .try_wait_nth(WAIT, 1, |e| matches!(e, Event::Connected(_)))
        .await;
    assert!(
        connected.is_some(),
        "no Connected after pairing; client events {:?}; simulator events {:?}",
        client.events.summaries(),
        target.events().await
    );
    assert_eq!(
        client.events.count(|e| matches!(e, Event::PairSuccess(_))),
        1
    );
    target.wait_online(&jid).await;
    (client, jid, backend)
}

pub async fn qr_pairing(target: &Target) {
    let started = Instant::now();
    let (client, jid, _backend) = pair(target).await;
    eprintln!("QR pairing to Connected took {:?}", started.elapsed());
    assert!(jid.starts_with(&format!("{PHONE}:")), "{jid}");
    assert_eq!(target.devices(PHONE).await, vec![jid.clone()]);
    let paired = sim_events(target, "paired", &jid).await;
    assert_eq!(paired.len(), 1);
    assert_eq!(paired[0]["with"], "qr");
    // The login after the 515 restart is a full XX handshake.
    assert_eq!(handshakes_of(target, &jid).await, vec!["xx"]);
    assert!(client.client.is_logged_in());
    client.stop().await;
}

pub async fn pairing_code(target: &Target) {
    let backend = new_backend();
    let client = target
        .client(
            &backend,
            ClientOptions {
                pair_code_for: Some(PHONE.to_string()),
                ..ClientOptions::default()
            },
        )
        .await;
    let code = client.pairing_code().await;
    assert_eq!(code.chars().filter(char::is_ascii_alphanumeric).count(), 8);
    let jid = target
        .enter_code(PHONE, &code)
        .await
        .expect("the code links the device");
    client
        .events
        .wait_for("PairSuccess", |e| matches!(e, Event::PairSuccess(_)))
        .await;
    client.wait_connected(1).await;
    target.wait_online(&jid).await;
    assert_eq!(target.devices(PHONE).await, vec![jid.clone()]);
    assert_eq!(sim_events(target, "paired", &jid).await[0]["with"], "code");
    client.stop().await;
}

pub async fn wrong_pairing_code(target: &Target) {
    let backend = new_backend();
    let client = target
        .client(
            &backend,
            ClientOptions {
                pair_code_for: Some(PHONE.to_string()),
                ..ClientOptions::default()
            },
        )
        .await;
    let code: String = client
        .pairing_code()
        .await
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    // Same alphabet, one character off: a typo on the phone.
    let first = if code.starts_with('A') { 'B' } else { 'A' };
    let typo = format!("{first}{}", &code[1..]);
    assert_eq!(
        target.enter_code(PHONE, &typo).await,
        Err("wrong_code".to_string())
    );
    client
        .events
        .wait_for("PairingCodeError", |e| {
            matches!(e, Event::PairingCodeError(_))
        })
        .await;
    assert!(target.devices(PHONE).await.is_empty());
    assert_eq!(
        client.events.count(|e| matches!(e, Event::PairSuccess(_))),
        0
    );
    assert_eq!(client.events.count(|e| matches!(e, Event::Connected(_))), 0);
    client.stop().await;
}

pub async fn reconnect_with_ik(target: &Target) {
    let (client, jid, backend) = pair(target).await;
    client.stop().await;
    target.wait_offline(&jid).await;
    let client = target.client(&backend, ClientOptions::default()).await;
    client.wait_connected(1).await;
    target.wait_online(&jid).await;
    assert_eq!(handshakes_of(target, &jid).await, vec!["xx", "ik"]);
    client.stop().await;
}

/// WhatsApp keeps a companion's one-time pre-keys: the client uploads a batch
/// after its first login, and a reconnect does not upload (nor generate)
/// another one.
pub async fn pre_keys_uploaded_once(target: &Target) {
    let (client, jid, backend) = pair(target).await;
    let deadline = Instant::now() + WAIT;
    while sim_events(target, "pre_keys_uploaded", &jid)
        .await
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no pre-key upload after pairing");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    client.stop().await;
    target.wait_offline(&jid).await;
    let client = target.client(&backend, ClientOptions::default()).await;
    client.wait_connected(1).await;
    target.wait_online(&jid).await;
    // The upload runs right after `Connected`; a repeat would show by now.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let uploads = sim_events(target, "pre_keys_uploaded", &jid).await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert!(uploads[0]["count"].as_u64().unwrap_or(0) > 0, "{uploads:?}");
    client.stop().await;
}

pub async fn reconnect_after_server_key_change(target: &Target) {
    let (client, jid, backend) = pair(target).await;
    client.stop().await;
    target.wait_offline(&jid).await;
    target.inject(Fault::RotateServerKey).await;
    let client = target.client(&backend, ClientOptions::default()).await;
    client.wait_connected(1).await;
    target.wait_online(&jid).await;
    assert_eq!(handshakes_of(target, &jid).await, vec!["xx", "xx_fallback"]);
    client.stop().await;
    // The fallback cached the new key: the next login resumes with IK.
    target.wait_offline(&jid).await;
    let client = target.client(&backend, ClientOptions::default()).await;
    client.wait_connected(1).await;
    assert_eq!(
        handshakes_of(target, &jid).await,
        vec!["xx", "xx_fallback", "ik"]
    );
    client.stop().await;
}

pub async fn logout(target: &Target) {
    let (client, jid, backend) = pair(target).await;
    client.client.logout().await;
    client
        .events
        .wait_for(
            "LoggedOut",
            |e| matches!(e, Event::LoggedOut(l) if !l.on_connect),
        )
        .await;
    assert!(target.devices(PHONE).await.is_empty());
    let unlinked = sim_events(target, "unlinked", &jid).await;
    assert_eq!(unlinked.len(), 1);
    assert_eq!(unlinked[0]["by"], "companion");
    client.stop().await;
    // The client keeps its keys; logging in with them again is refused.
    let client = target.client(&backend, ClientOptions::default()).await;
    client
        .events
        .wait_for(
            "LoggedOut on connect",
            |e| matches!(e, Event::LoggedOut(l) if l.on_connect),
        )
        .await;
    assert_eq!(refusals(target, 401).await, 1);
    assert_eq!(client.events.count(|e| matches!(e, Event::Connected(_))), 0);
    client.stop().await;
}

async fn logout_not_honoured(target: &Target, reply: LogoutReply, name: &str) {
    let (client, jid, _backend) = pair(target).await;
    target.inject(Fault::LogoutReply { reply }).await;
    client.client.logout().await;
    client
        .events
        .wait_for("LoggedOut", |e| matches!(e, Event::LoggedOut(_)))
        .await;
    let noted = sim_events(target, "logout_not_honoured", &jid).await;
    assert_eq!(noted.len(), 1);
    assert_eq!(noted[0]["reply"], name);
    // The server never unlinked it: the phone still lists the device.
    assert_eq!(target.devices(PHONE).await, vec![jid]);
    client.stop().await;
}

pub async fn logout_answered_with_error(target: &Target) {
    logout_not_honoured(target, LogoutReply::Error, "error").await;
}

pub async fn logout_not_answered(target: &Target) {
    logout_not_honoured(target, LogoutReply::NoAnswer, "no_answer").await;
}

pub async fn device_removed_from_phone(target: &Target) {
    let (client, jid, backend) = pair(target).await;
    target.remove_device(PHONE, &jid).await;
    client
        .events
        .wait_for("LoggedOut", |e| matches!(e, Event::LoggedOut(_)))
        .await;
    target.wait_offline(&jid).await;
    assert!(target.devices(PHONE).await.is_empty());
    assert_eq!(sim_events(target, "unlinked", &jid).await[0]["by"], "phone");
    client.stop().await;
    let client = target.client(&backend, ClientOptions::default()).await;
    client
        .events
        .wait_for(
            "LoggedOut on connect",
            |e| matches!(e, Event::LoggedOut(l) if l.on_connect),
        )
        .await;
    assert_eq!(refusals(target, 401).await, 1);
    client.stop().await;
}

pub async fn stream_replaced(target: &Target) {
    let (client, jid, _backend) = pair(target).await;
    target.inject(Fault::Replace { jid: jid.clone() }).await;
    client
        .events
        .wait_for("StreamReplaced", |e| matches!(e, Event::StreamReplaced(_)))
        .await;
    target.wait_offline(&jid).await;
    // Replaced is final: the device stays linked but the client does not
    // come back on its own.
    assert_eq!(target.devices(PHONE).await, vec![jid.clone()]);
    assert_eq!(handshakes_of(target, &jid).await.len(), 1);
    client.stop().await;
}

pub async fn temporary_ban(target: &Target) {
    let (client, jid, _backend) = pair(target).await;
    target
        .inject(Fault::Ban {
            jid: jid.clone(),
            code: 101,
            seconds: 3600,
        })
        .await;
    let event = client
        .events
        .wait_for("TemporaryBan", |e| matches!(e, Event::TemporaryBan(_)))
        .await;
    let Event::TemporaryBan(ban) = &*event else {
        unreachable!("filtered on TemporaryBan")
    };
    let expire = ban.expire.num_seconds();
    assert!((3500..=3600).contains(&expire), "expire {expire}");
    assert_eq!(refusals(target, 402).await, 1);
    client.stop().await;
}

pub async fn client_outdated(target: &Target) {
    let (client, _jid, _backend) = pair(target).await;
    target.inject(Fault::ClientOutdated { on: true }).await;
    client
        .events
        .wait_for("ClientOutdated", |e| matches!(e, Event::ClientOutdated(_)))
        .await;
    assert_eq!(refusals(target, 405).await, 1);
    client.stop().await;
}

pub async fn service_unavailable_then_recovery(target: &Target) {
    let (client, jid, _backend) = pair(target).await;
    target.inject(Fault::FailLogins503 { count: 1 }).await;
    target.inject(Fault::DropConnections).await;
    client
        .events
        .wait_for("ConnectFailure", |e| matches!(e, Event::ConnectFailure(_)))
        .await;
    client.wait_connected(2).await;
    target.wait_online(&jid).await;
    assert_eq!(refusals(target, 503).await, 1);
    client.stop().await;
}

pub async fn dropped_connection_reconnects(target: &Target) {
    let (client, jid, _backend) = pair(target).await;
    target.inject(Fault::Latency { ms: 20 }).await;
    target.inject(Fault::DropConnections).await;
    client
        .events
        .wait_for("Disconnected", |e| matches!(e, Event::Disconnected(_)))
        .await;
    client.wait_connected(2).await;
    target.wait_online(&jid).await;
    assert_eq!(handshakes_of(target, &jid).await, vec!["xx", "ik"]);
    client.stop().await;
}

pub async fn stalled_server_reconnects(target: &Target) {
    let (client, jid, _backend) = pair(target).await;
    target.inject(Fault::Stall).await;
    // Keepalives go unanswered; the client gives up on the connection and
    // logs in again on a fresh one.
    client
        .events
        .wait_nth_within(STALL_WAIT, 2, "Connected after the stall", |e| {
            matches!(e, Event::Connected(_))
        })
        .await;
    target.wait_online(&jid).await;
    assert_eq!(handshakes_of(target, &jid).await.len(), 2);
    client.stop().await;
}

pub async fn qr_refs_exhausted(target: &Target) {
    let backend = new_backend();
    // 60 s + 5 x 20 s of QR rotation, compressed 40 times.
    let client = target
        .client(
            &backend,
            ClientOptions {
                factor: 40,
                ..ClientOptions::default()
            },
        )
        .await;
    client
        .events
        .wait_for("PairingQrCodesExhausted", |e| {
            matches!(e, Event::PairingQrCodesExhausted(_))
        })
        .await;
    assert_eq!(
        client
            .events
            .count(|e| matches!(e, Event::PairingQrCode(_))),
        6
    );
    assert!(target.devices(PHONE).await.is_empty());
    client.stop().await;
}

pub async fn fifth_device_refused(target: &Target) {
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, _jid, _backend) = pair(target).await;
        clients.push(client);
    }
    assert_eq!(target.devices(PHONE).await.len(), 4);
    let backend = new_backend();
    let fifth = target.client(&backend, ClientOptions::default()).await;
    let qr = fifth.next_qr().await;
    assert_eq!(
        target.scan(PHONE, &qr).await,
        Err("device_limit".to_string())
    );
    assert_eq!(target.devices(PHONE).await.len(), 4);
    assert_eq!(
        fifth.events.count(|e| matches!(e, Event::PairSuccess(_))),
        0
    );
    fifth.stop().await;
    for client in clients {
        client.stop().await;
    }
}

/// The `n`th (1-based) simulator event of kind `event` about `jid`, waited for.
async fn nth_sim_event(target: &Target, event: &str, jid: &str, n: usize) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = sim_events(target, event, jid).await.into_iter().nth(n - 1) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {event} #{n} for {jid}; simulator events {:?}",
            target.events().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The devices the client's registry holds for the phone's account, sorted.
async fn registry_devices(client: &TestClient) -> Vec<String> {
    let account = wa_sim::Jid::pn(PHONE);
    let mut devices: Vec<String> = client
        .client
        .signal()
        .get_user_devices(std::slice::from_ref(&account))
        .await
        .expect("device list resolves")
        .iter()
        .map(|d| d.to_string())
        .collect();
    devices.sort();
    devices
}

/// After every login whatsapp-rust asks (usync) for its own account's device
/// list, sending back the hash of the list it holds. The simulator answers
/// with the phone and its linked companions and their signed key-index list;
/// the client keeps it, so the next login's hash is current and the account
/// is left out ("unchanged"), until another companion is linked.
pub async fn own_device_list_synced(target: &Target) {
    let (client, jid, backend) = pair(target).await;
    let first = nth_sim_event(target, "usync_answered", &jid, 1).await;
    assert_eq!(first["protocols"], serde_json::json!(["devices"]));
    let listed: Vec<&str> = first["listed"]
        .as_array()
        .expect("listed users")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed.len(), 2, "own PN and LID: {first}");
    assert!(listed.contains(&format!("{PHONE}@s.whatsapp.net").as_str()));
    assert!(listed.iter().any(|user| user.ends_with("@lid")), "{first}");
    client.stop().await;
    target.wait_offline(&jid).await;

    // The client stored what it was told: its hash is current.
    let client = target.client(&backend, ClientOptions::default()).await;
    client.wait_connected(1).await;
    let second = nth_sim_event(target, "usync_answered", &jid, 2).await;
    assert_eq!(second["listed"], serde_json::json!([]), "{second}");
    assert_eq!(second["unchanged"].as_array().map(Vec::len), Some(2));
    let mut phone_and_companion = vec![jid.clone(), format!("{PHONE}@s.whatsapp.net")];
    phone_and_companion.sort();
    assert_eq!(registry_devices(&client).await, phone_and_companion);
    // Served from the registry: no further query.
    assert_eq!(sim_events(target, "usync_answered", &jid).await.len(), 2);

    // A second companion changes the list; the next login is told.
    let (other, other_jid, _other_backend) = pair(target).await;
    client.stop().await;
    target.wait_offline(&jid).await;
    let client = target.client(&backend, ClientOptions::default()).await;
    client.wait_connected(1).await;
    let third = nth_sim_event(target, "usync_answered", &jid, 3).await;
    assert_eq!(third["listed"].as_array().map(Vec::len), Some(2), "{third}");
    let mut all = phone_and_companion;
    all.push(other_jid.clone());
    all.sort();
    // The answer is applied after the simulator recorded sending it.
    let deadline = Instant::now() + WAIT;
    loop {
        let held = registry_devices(&client).await;
        if held == all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registry holds {held:?}, not {all:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sim_events(target, "usync_answered", &jid).await.len(), 3);

    let refused: Vec<Value> = target
        .events()
        .await
        .into_iter()
        .filter(|e| e["event"] == "iq_not_modelled" && e["xmlns"] == "usync")
        .collect();
    assert!(refused.is_empty(), "usync answered 501: {refused:?}");
    other.stop().await;
    client.stop().await;
}
