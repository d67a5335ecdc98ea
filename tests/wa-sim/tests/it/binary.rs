//! The `wa-sim` process itself: loopback only, clean stop on SIGTERM.

use crate::flows;
use crate::harness::{BinarySim, ClientOptions, PHONE, Target, WAIT, new_backend};

#[tokio::test]
async fn refuses_non_loopback_addresses() {
    let status = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-sim"))
            .args(["--listen", "0.0.0.0:0", "--control", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status(),
    )
    .await
    .expect("wa-sim exits in time")
    .expect("wa-sim ran");
    assert_eq!(status.code(), Some(2));
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let mut sim = BinarySim::start(&[]).await;
    let (status, body) = sim.http("GET", "/health", None).await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)));
    let (status, _) = sim.http("GET", "/no/such/route", None).await;
    assert_eq!(status, 404);
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &sim.pid().to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    assert!(sim.wait_exit().await.success());
}

/// `--max-companions` is what benchmarks lower or raise; with 1, the
/// second scan on the same phone is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_companions_flag_is_honoured() {
    let target = Target::Binary(BinarySim::start(&["--max-companions", "1"]).await);
    let (first, _jid, _backend) = flows::pair(&target).await;
    let second = target.client(&new_backend(), ClientOptions::default()).await;
    let qr = second.next_qr().await;
    assert_eq!(target.scan(PHONE, &qr).await, Err("device_limit".to_string()));
    assert_eq!(target.devices(PHONE).await.len(), 1);
    second.stop().await;
    first.stop().await;
}
