//! Benchmark of the device service against the loopback simulator (wa-sim
//! serving a real WebSocket on 127.0.0.1, in a child process: this same
//! binary started with `--simulator`).
//!
//! Run inside a D-Bus session with an unlocked keyring:
//! `dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; cargo run --release -p wa-device-core --example bench -- 1,100,1000'`
//!
//! Prints: login request to first QR; pairing to `logged_in` (the client's
//! fixed 10 s post-pairing wait excluded); logout p50/p99 with the unlink
//! confirmed; and for each N, start-up restore time to all `logged_in`, RSS
//! and idle CPU, plus memory per connected device.
//!
//! The restore runs in a fresh process (this binary with `--restore`), as
//! the app's start-up does: its RSS and CPU are of the service and its
//! whatsapp-rust clients alone. The simulator's CPU during the restore and
//! how busy the whole machine was are printed beside it: on a small machine
//! the simulator, the Secret Service and the service share the cores.
//! `BENCH_CONCURRENCY=N` overrides `ServiceConfig::restore_concurrency`.
//! `BENCH_RESTORE_RUNS=K` restores each folder K times (fresh processes) and
//! prints every run: single runs vary by tens of percent on a shared machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use wa_device_core::{
    Actor, DeviceService, DeviceState, KeyringSecretStore, NewDevice, SecretStore, ServerEndpoint,
    ServiceConfig, ServiceEvent,
};
use wa_test_support::qr::qr_payload;

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
    if let Ok(n) = std::env::var("BENCH_CONCURRENCY") {
        config.restore_concurrency = n.parse().unwrap();
    }
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
    cpu_ticks_of("self")
}

/// Busy and total time of the whole machine, in ticks (from /proc/stat).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are fields 4 and 5 of the `cpu` line.
    (total - fields[3] - fields[4], total)
}

/// CPU time of the Secret Service (gnome-keyring-daemon) and the D-Bus
/// daemons carrying its calls, in ticks of 10 ms.
fn keyring_daemon_ticks() -> u64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid = entry.ok()?.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            matches!(comm.trim(), "gnome-keyring-d" | "dbus-daemon").then(|| cpu_ticks_of(&pid))
        })
        .sum()
}

/// CPU time of process `pid` ("self" for this one), in ticks of 10 ms.
fn cpu_ticks_of(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from 3 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Waits until every device of `ids` is `logged_in`, following the
/// service's events (polling `list` would cost the service CPU and its
/// database lock while it restores).
async fn wait_logged_in(
    service: &DeviceService,
    events: &mut tokio::sync::broadcast::Receiver<ServiceEvent>,
    ids: &[String],
    limit: Duration,
) -> bool {
    let mut waiting: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut check_list = true;
    let deadline = tokio::time::Instant::now() + limit;
    while !waiting.is_empty() {
        if check_list {
            // Devices that logged in before `events` was subscribed, or
            // while it lagged, are only in the list.
            for device in service.list().unwrap() {
                if device.state == DeviceState::LoggedIn {
                    waiting.remove(device.id.as_str());
                }
            }
            check_list = false;
            continue;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return false,
            Ok(Ok(ServiceEvent::DeviceChanged { device })) => {
                if device.state == DeviceState::LoggedIn {
                    waiting.remove(device.id.as_str());
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => check_list = true,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return false,
        }
    }
    true
}

/// Creates and links `count` devices; returns their ids and the pairing
/// times (scan to `logged_in`, fixed wait excluded).
async fn link_devices(
    service: &DeviceService,
    sim: &wa_sim::ControlClient,
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
        let mut events = service.subscribe();
        let qr = service.login_qr(&id, Actor::System).await.unwrap();
        let phone = format!("1555{:07}", first_phone + i / 4);
        let started = Instant::now();
        sim.scan(&phone, &qr_payload(&qr.svg)).await.unwrap();
        assert!(
            wait_logged_in(
                service,
                &mut events,
                std::slice::from_ref(&id),
                Duration::from_secs(30)
            )
            .await,
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
    sim: &wa_sim::ControlClient,
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
/// measures a start-up restore in a fresh process, as the app does it:
/// time to all `logged_in`, RSS, idle CPU. Returns the RSS in KiB.
async fn measure_restore(
    ws_url: &str,
    sim: &wa_sim::ControlClient,
    data: &std::path::Path,
    secrets: &Arc<dyn SecretStore>,
    keyring_service: &str,
    simulator_pid: u32,
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
    // `shutdown` stopped every session, and stopping closes the session's
    // store (a checkpoint), so none closes while the restore is timed.
    // Where restore time goes: one keyring read per device (D-Bus to the
    // Secret Service), measured on its own. Entries are named under the
    // folder's keyring scope.
    let names = wa_device_core::secrets::KeyringNames::of_folder(
        &wa_device_core::files::DataLayout::new(data.to_path_buf()),
    )
    .unwrap()
    .expect("the service created the folder's keyring scope");
    let sample: Vec<String> = ids
        .iter()
        .take(50)
        .map(|id| names.device(&wa_device_core::DeviceId::parse(id).unwrap()))
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
    // BENCH_RESTORE_RUNS restores the same folder that many times over
    // (each in a fresh process): single runs vary by tens of percent here.
    let runs: usize = std::env::var("BENCH_RESTORE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut first_rss_kib = None;
    for run in 1..=runs {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let output = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg("--restore")
            .arg(data)
            .arg(ws_url)
            .arg(keyring_service)
            .arg(simulator_pid.to_string())
            .stdout(std::process::Stdio::piped())
            // `output()` would capture stderr too, hiding a panic's message.
            .spawn()
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        assert!(output.status.success(), "the restore process failed");
        let figures: RestoreFigures = serde_json::from_slice(&output.stdout).unwrap();
        println!(
            "N = {n}{}: restore to all logged_in {:?}{} using {:?} of CPU (the simulator: {:?}; the Secret Service and D-Bus: {:?}; all cores busy {:.0} %); RSS {} MiB; idle CPU {:.2} % of one core (targets for 1000: < 3 s, < 400 MB, < 2 %); load average before: {}",
            if runs > 1 {
                format!(" (run {run} of {runs})")
            } else {
                String::new()
            },
            Duration::from_millis(figures.restore_ms),
            if figures.all_logged_in == n {
                String::new()
            } else {
                format!(" (ONLY {} of {n} logged in)", figures.all_logged_in)
            },
            Duration::from_millis(figures.restore_cpu_ms),
            Duration::from_millis(figures.simulator_cpu_ms),
            Duration::from_millis(figures.keyring_cpu_ms),
            figures.machine_busy_percent,
            figures.rss_kib / 1024,
            figures.idle_cpu_percent,
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        first_rss_kib.get_or_insert(figures.rss_kib);
    }
    // The keyring entries go; the data folder goes with the temporary dir.
    for id in &ids {
        let _ = secrets.delete(&names.device(&wa_device_core::DeviceId::parse(id).unwrap()));
    }
    first_rss_kib.unwrap_or(0)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RestoreFigures {
    restore_ms: u64,
    restore_cpu_ms: u64,
    simulator_cpu_ms: u64,
    machine_busy_percent: f64,
    keyring_cpu_ms: u64,
    all_logged_in: usize,
    rss_kib: u64,
    idle_cpu_percent: f64,
}

/// The restore process: opens the service on `data` (which restores every
/// linked device), waits for all of them to be `logged_in`, then measures
/// RSS and idle CPU and prints them as JSON.
async fn run_restore(
    data: &std::path::Path,
    ws_url: &str,
    keyring_service: &str,
    simulator_pid: &str,
) {
    let secrets: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::new(keyring_service));
    let started = Instant::now();
    let ticks = cpu_ticks();
    let simulator_ticks = cpu_ticks_of(simulator_pid);
    let machine = machine_ticks();
    let keyring_ticks = keyring_daemon_ticks();
    let service = DeviceService::open(config(ws_url, data, &secrets, 1))
        .await
        .unwrap();
    let mut events = service.subscribe();
    let ids: Vec<String> = service
        .list()
        .unwrap()
        .into_iter()
        .filter(|d| d.has_credentials)
        .map(|d| d.id.to_string())
        .collect();
    let all_in = wait_logged_in(&service, &mut events, &ids, Duration::from_secs(120)).await;
    let restore = started.elapsed();
    let restore_cpu_ms = (cpu_ticks() - ticks) * 10;
    let simulator_cpu_ms = (cpu_ticks_of(simulator_pid) - simulator_ticks) * 10;
    let machine_after = machine_ticks();
    let keyring_cpu_ms = (keyring_daemon_ticks() - keyring_ticks) * 10;
    let machine_busy_percent =
        (machine_after.0 - machine.0) as f64 * 100.0 / (machine_after.1 - machine.1).max(1) as f64;
    let logged_in = if all_in {
        ids.len()
    } else {
        let devices = service.list().unwrap();
        devices
            .iter()
            .filter(|d| d.state == DeviceState::LoggedIn)
            .count()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kib = rss_kib();
    let ticks_before = cpu_ticks();
    let idle_window = Duration::from_secs(10);
    tokio::time::sleep(idle_window).await;
    let idle_cpu_percent =
        (cpu_ticks() - ticks_before) as f64 * 10.0 / idle_window.as_millis() as f64 * 100.0;
    service.shutdown().await;
    let figures = RestoreFigures {
        restore_ms: restore.as_millis() as u64,
        restore_cpu_ms,
        simulator_cpu_ms,
        machine_busy_percent,
        keyring_cpu_ms,
        all_logged_in: logged_in,
        rss_kib,
        idle_cpu_percent,
    };
    println!("{}", serde_json::to_string(&figures).unwrap());
}

/// The simulator's process: serves until its stdin closes (the benchmark
/// ended or died).
async fn run_simulator() {
    let sim = wa_sim::Simulator::new(wa_sim::SimConfig {
        max_companions: 4,
        ..wa_sim::SimConfig::default()
    });
    let endpoints = wa_sim::serve(
        sim,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    println!("{} {}", endpoints.ws_url, endpoints.control_url);
    let _ = tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await;
}

/// Starts the simulator in a child process; returns it with its WebSocket
/// URL and control API.
async fn start_simulator() -> (tokio::process::Child, String, wa_sim::ControlClient) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("--simulator")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    let (ws_url, control_url) = line.trim().split_once(' ').unwrap();
    (
        child,
        ws_url.to_owned(),
        wa_sim::ControlClient::new(control_url),
    )
}

#[tokio::main]
async fn main() {
    let first = std::env::args().nth(1);
    if first.as_deref() == Some("--simulator") {
        run_simulator().await;
        return;
    }
    if first.as_deref() == Some("--restore") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        run_restore(std::path::Path::new(&args[0]), &args[1], &args[2], &args[3]).await;
        return;
    }
    let sizes: Vec<usize> = first
        .unwrap_or_else(|| "1,100,1000".into())
        .split(',')
        .map(|n| n.parse().expect("device counts like 1,100,1000"))
        .collect();
    let (simulator, ws_url, sim) = start_simulator().await;
    let simulator_pid = simulator.id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyring_service = format!("wa-device-admin-bench-{}", std::process::id());
    let secrets: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::new(keyring_service.clone()));

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
        let rss = measure_restore(
            &ws_url,
            &sim,
            &data,
            &secrets,
            &keyring_service,
            simulator_pid,
            n,
        )
        .await;
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
}
