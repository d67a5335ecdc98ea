//! The real `wa-device-admin serve` binary under a 1,024 open-file limit
//! (`prlimit --nofile=1024`): `/health` keeps answering while more slow
//! connections than the process could hold files for trickle header lines.
//! No window: the app runs as the REST API server only.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// More connections than the 1,024 files the server may open.
const FLOOD: usize = 1_100;

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary under the file limit and returns once it listens.
fn start_server(data: &std::path::Path) -> (Server, SocketAddr) {
    let mut child = Command::new("prlimit")
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_wa-device-admin"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--basic-auth",
            "admin:flood-pass",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run prlimit (util-linux) with the app");
    let stdout = child.stdout.take().expect("the server's stdout");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = tx.send(
                    addr.trim()
                        .parse::<SocketAddr>()
                        .expect("the listen address"),
                );
                return;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server prints its address");
    (server, addr)
}

/// A request line, then one header line every 2 s, never ending the head.
async fn trickle(addr: SocketAddr, for_at_most: Duration) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    if stream
        .write_all(b"GET /devices HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut buf = [0_u8; 256];
    let mut line = 0_u32;
    while started.elapsed() < for_at_most {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => {
                line += 1;
                let header = format!("X-Slow-{line}: {line}\r\n");
                if stream.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The status line of `GET /health` on a new connection, within 2 s.
async fn health(addr: SocketAddr) -> Result<String, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        stream
            .read_to_end(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out).into_owned();
        Ok(text.lines().next().unwrap_or_default().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| "no answer within 2 s".to_owned())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_under_a_1024_file_limit_answers_health_through_a_flood_of_slow_connections() {
    let data = tempfile::tempdir().expect("temp dir");
    let (server, addr) = start_server(data.path());
    assert_eq!(health(addr).await.as_deref(), Ok("HTTP/1.1 200 OK"));

    let flood: Vec<_> = (0..FLOOD)
        .map(|_| tokio::spawn(trickle(addr, Duration::from_secs(9))))
        .collect();
    // Let the flood connect and send its first lines.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..4 {
        let answer = health(addr).await;
        assert_eq!(
            answer.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "/health during the flood, round {round}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for connection in flood {
        connection.await.expect("a connection task");
    }
    assert_eq!(health(addr).await.as_deref(), Ok("HTTP/1.1 200 OK"));
    drop(server);
}
