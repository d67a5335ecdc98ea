//! `wa-device-admin serve` ends within 5 s of SIGTERM, even while a request
//! waits on a locked keyring whose unlock prompt nobody answers.
//!
//! The keyring is locked in a desktop session of the test's own (locking
//! the shared one would fail every other test).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

/// Locks the session's keyring, prints the shell's PID (which `exec` gives
/// to the app), then runs the app.
const LOCK_THEN_RUN: &str = r#"
dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
    org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null
echo "app pid $$"
exec "$@"
"#;

fn curl(args: &[&str]) -> std::process::Child {
    Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-u",
            "admin:stop-pass",
            "--max-time",
            "30",
        ])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("run curl")
}

#[test]
fn serve_stops_within_5_s_of_sigterm_with_a_request_stuck_on_a_locked_keyring() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/desktop-session.sh");
    let mut session = Command::new(script)
        .args(["sh", "-c", LOCK_THEN_RUN, "sh"])
        .arg(env!("CARGO_BIN_EXE_wa-device-admin"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--basic-auth", "admin:stop-pass", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the app in a desktop session");
    let mut lines = BufReader::new(session.stdout.take().expect("stdout")).lines();
    let mut pid = None;
    for line in lines.by_ref() {
        let line = line.expect("read the app's output");
        if let Some(number) = line.strip_prefix("app pid ") {
            pid = Some(number.trim().to_owned());
        }
        if line.starts_with("listening on ") {
            break;
        }
    }
    let pid = pid.expect("the session printed the app's pid");

    let created = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"device_id":"stuck"}"#,
        &format!("{base}/devices"),
    ])
    .wait_with_output()
    .expect("create a device");
    assert!(created.status.success());
    // A logout deletes the device's keyring entries: it waits on the lock.
    let mut logout = curl(&["-X", "POST", &format!("{base}/devices/stuck/logout")]);
    std::thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let proc_dir = format!("/proc/{pid}");
    while Path::new(&proc_dir).exists() && signalled.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped_after = signalled.elapsed();
    let _ = logout.wait();
    let _ = session.wait();
    assert!(
        stopped_after < Duration::from_secs(5),
        "the app took {stopped_after:?} to stop after SIGTERM"
    );
}
