//! Benchmark of the device service against the loopback simulator (wa-sim
//! serving a real WebSocket on 127.0.0.1, in this process).
//!
//! Run inside a D-Bus session with an unlocked keyring:
//! `dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; cargo run --release -p wa-device-core --example bench -- 1,100,1000'`
//!
//! Prints: login request to first QR; pairing to `logged_in` (the client's
//! fixed 10 s post-pairing wait excluded); logout p50/p99 with the unlink
//! confirmed; and for each N, start-up restore time to all `logged_in`, RSS
//! and idle CPU, plus memory per connected device. RSS and CPU are of this
//! process, which also runs the simulator: they are upper bounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/qr.rs"]
mod qr;

use std::sync::Arc;
use std::time::{Duration, Instant};
use wa_device_core::{
    Actor, DeviceService, DeviceState, KeyringSecretStore, NewDevice, SecretStore, ServerEndpoint,
    ServiceConfig,
};

/// The client's clock runs this much faster (see `SessionSettings`): the
/// fixed 10 s wait after a pairing becomes 10 s / FACTOR.
const TIME_FACTOR: u32 = 100;
const FIXED_PAIRING_WAIT: Duration = Duration::from_secs(10);

/// `time_factor` compresses the client's clock: needed to link devices
/// quickly, wrong for idle measurements (keepalives would run that much
/// faster), so the restore phase runs at 1.
fn config(
    ws_url: &str,
    data: &std::path::Path,
    secrets: &Arc<dyn SecretStore>,
    time_factor: u32,
) -> ServiceConfig {
    let mut config = ServiceConfig::new(data, Arc::clone(secrets));
    config.server = ServerEndpoint::WebSocketUrl(ws_url.to_owned());
    config.client_time_factor = time_factor;
    config
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process (user + system), in clock ticks of 10 ms.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from 3 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

async fn wait_logged_in(service: &DeviceService, ids: &[String], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let devices = service.list().unwrap();
        let done = ids.iter().all(|id| {
            devices
                .iter()
                .any(|d| d.id.as_str() == id && d.state == DeviceState::LoggedIn)
        });
        if done {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Creates and links `count` devices; returns their ids and the pairing
/// times (scan to `logged_in`, fixed wait excluded).
async fn link_devices(
    service: &DeviceService,
    sim: &wa_sim::Simulator,
    prefix: &str,
    count: usize,
) -> (Vec<String>, Vec<Duration>) {
    // A phone links at most 4 companions; every call gets phones of its own.
    static NEXT_PHONE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let first_phone = NEXT_PHONE.fetch_add(count.div_ceil(4), std::sync::atomic::Ordering::Relaxed);
    let mut ids = Vec::new();
    let mut pairing = Vec::new();
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        service
            .create(
                NewDevice {
                    id: Some(id.clone()),
                    label: id.clone(),
                },
                Actor::System,
            )
            .await
            .unwrap();
        let qr = service.login_qr(&id, Actor::System).await.unwrap();
        let phone = format!("1555{:07}", first_phone + i / 4);
        let started = Instant::now();
        sim.phone(&phone)
            .scan(&qr::qr_payload(&qr.svg))
            .await
            .unwrap();
        assert!(
            wait_logged_in(service, std::slice::from_ref(&id), Duration::from_secs(30)).await,
            "{id} did not log in"
        );
        pairing.push(
            started
                .elapsed()
                .saturating_sub(FIXED_PAIRING_WAIT / TIME_FACTOR),
        );
        ids.push(id);
    }
    (ids, pairing)
}

/// Links `count` devices, `LINK_PARALLEL` at a time (setting up the restore
/// measurement; timings of these pairings are not reported).
async fn link_many(
    service: &DeviceService,
    sim: &wa_sim::Simulator,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    const LINK_PARALLEL: usize = 16;
    let mut ids = Vec::with_capacity(count);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(LINK_PARALLEL) {
        for &i in chunk {
            let (service, sim, prefix) = (service.clone(), sim.clone(), prefix.to_owned());
            tasks.spawn(async move {
                let (ids, _) = link_devices(&service, &sim, &format!("{prefix}-{i}"), 1).await;
                ids
            });
        }
        while let Some(linked) = tasks.join_next().await {
            ids.extend(linked.unwrap());
        }
    }
    ids
}

/// Links `n` devices on a fresh data folder, closes the service, then
/// measures a start-up restore: time to all `logged_in`, RSS, idle CPU.
/// Returns the RSS in KiB.
async fn measure_restore(
    ws_url: &str,
    sim: &wa_sim::Simulator,
    data: &std::path::Path,
    secrets: &Arc<dyn SecretStore>,
    n: usize,
) -> u64 {
    let ids = {
        let service = DeviceService::open(config(ws_url, data, secrets, TIME_FACTOR))
            .await
            .unwrap();
        let ids = link_many(&service, sim, &format!("r{n}"), n).await;
        service.shutdown().await;
        ids
    };
    // Where restore time goes: one keyring read per device (D-Bus to the
    // Secret Service), measured on its own.
    let sample: Vec<String> = ids
        .iter()
        .take(50)
        .map(|id| {
            wa_device_core::session::store::secret_name(
                &wa_device_core::DeviceId::parse(id).unwrap(),
            )
        })
        .collect();
    let keyring_started = Instant::now();
    for name in &sample {
        secrets
            .get(name)
            .unwrap()
            .expect("linked devices have secrets");
    }
    println!(
        "N = {n}: keyring read {:?} per device (mean of {})",
        keyring_started.elapsed() / sample.len().max(1) as u32,
        sample.len()
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let service = DeviceService::open(config(ws_url, data, secrets, 1))
        .await
        .unwrap();
    let all_in = wait_logged_in(&service, &ids, Duration::from_secs(120)).await;
    let restore = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib();
    let ticks_before = cpu_ticks();
    let idle_window = Duration::from_secs(10);
    tokio::time::sleep(idle_window).await;
    let idle_cpu =
        (cpu_ticks() - ticks_before) as f64 * 10.0 / idle_window.as_millis() as f64 * 100.0;
    println!(
        "N = {n}: restore to all logged_in {restore:?}{}; RSS {} MiB; idle CPU {idle_cpu:.2} % of one core (targets for 1000: < 3 s, < 400 MB, < 2 %); load average before: {}",
        if all_in { "" } else { " (NOT all logged in)" },
        rss / 1024,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    service.shutdown().await;
    // The keyring entries go; the data folder goes with the temporary dir.
    for id in &ids {
        let _ = secrets.delete(&wa_device_core::session::store::secret_name(
            &wa_device_core::DeviceId::parse(id).unwrap(),
        ));
    }
    rss
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "1,100,1000".into())
        .split(',')
        .map(|n| n.parse().expect("device counts like 1,100,1000"))
        .collect();
    let sim = wa_sim::Simulator::new(wa_sim::SimConfig {
        max_companions: 4,
        ..wa_sim::SimConfig::default()
    });
    let endpoints = wa_sim::serve(
        sim.clone(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let ws_url = endpoints.ws_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::new(format!(
        "wa-device-admin-bench-{}",
        std::process::id()
    )));

    // First QR and pairing, on a service of their own.
    {
        let data = dir.path().join("pairing");
        let service = DeviceService::open(config(&ws_url, &data, &secrets, TIME_FACTOR))
            .await
            .unwrap();
        let mut first_qr = Vec::new();
        for i in 0..20 {
            let id = format!("qr-{i}");
            service
                .create(
                    NewDevice {
                        id: Some(id.clone()),
                        label: id.clone(),
                    },
                    Actor::System,
                )
                .await
                .unwrap();
            let started = Instant::now();
            service.login_qr(&id, Actor::System).await.unwrap();
            first_qr.push(started.elapsed());
            service.cancel_login(&id, Actor::System).await.unwrap();
        }
        println!(
            "login request -> first QR: p50 {:?}, p99 {:?} (target < 50 ms)",
            percentile(&mut first_qr, 0.5),
            percentile(&mut first_qr, 0.99)
        );
        let (ids, mut pairing) = link_devices(&service, &sim, "pair", 20).await;
        println!(
            "scan -> logged_in (fixed 10 s wait excluded): p50 {:?}, p99 {:?}",
            percentile(&mut pairing, 0.5),
            percentile(&mut pairing, 0.99)
        );
        let mut logout = Vec::new();
        let mut confirmed = 0;
        for id in &ids {
            let started = Instant::now();
            let outcome = service.logout(id, Actor::System).await.unwrap();
            logout.push(started.elapsed());
            confirmed += usize::from(outcome.unlink_confirmed);
        }
        println!(
            "logout (unlink confirmed {confirmed}/{}): p50 {:?}, p99 {:?} (target p50 < 20 ms)",
            ids.len(),
            percentile(&mut logout, 0.5),
            percentile(&mut logout, 0.99)
        );
        service.shutdown().await;
    }

    // Start-up restore with N linked devices.
    let mut rss_by_size = Vec::new();
    for &n in &sizes {
        let data = dir.path().join(format!("restore-{n}"));
        let rss = measure_restore(&ws_url, &sim, &data, &secrets, n).await;
        rss_by_size.push((n, rss));
    }
    if let (Some((n0, r0)), Some((n1, r1))) = (rss_by_size.first(), rss_by_size.last())
        && n1 > n0
    {
        println!(
            "memory per connected device: {} KiB (RSS difference between N = {n0} and N = {n1})",
            r1.saturating_sub(*r0) / (*n1 - *n0) as u64
        );
    }
    endpoints.shutdown().await;
}
