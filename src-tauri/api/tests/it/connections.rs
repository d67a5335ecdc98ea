//! The connection layer under slow and idle clients: the header-read
//! timeout (from a head's first byte), the idle keep-alive bound (apart from
//! it, so a quiet keep-alive client is not cut), and the connection cap with
//! `/health` answering while a flood of slow connections is held.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wa_sim::SimConfig;

use crate::support::Rig;

/// What a slow client trickles.
#[derive(Clone, Copy)]
enum Slow {
    /// Header lines, never ending the head.
    Head,
    /// Body bytes of a whole head that announces 1,000.
    Body,
}

/// Sends a request line and then one header line (or one body byte) every
/// 2 s, never ending the request, until the server closes the connection or
/// `for_at_most` passes. Returns when (after the start) the server closed
/// it, if it did.
async fn trickle(mut stream: TcpStream, slow: Slow, for_at_most: Duration) -> Option<Duration> {
    let started = Instant::now();
    let opening: &[u8] = match slow {
        Slow::Head => b"GET /health HTTP/1.1\r\nHost: x\r\n",
        Slow::Body => b"POST /devices HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
    };
    if stream.write_all(opening).await.is_err() {
        return Some(started.elapsed());
    }
    let mut buf = [0_u8; 256];
    let mut line = 0_u32;
    while started.elapsed() < for_at_most {
        // A read that ends (EOF or reset) means the server closed it.
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => {
                line += 1;
                let more = match slow {
                    Slow::Head => format!("X-Slow-{line}: {line}\r\n"),
                    Slow::Body => " ".to_owned(),
                };
                if stream.write_all(more.as_bytes()).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// `GET /health` on a new connection, within `within`.
async fn health_answers(addr: std::net::SocketAddr, within: Duration) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(within, attempt).await, Ok(Some(true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_trickled_line_by_line_is_cut_at_the_header_read_timeout() {
    let rig = Rig::with(SimConfig::default(), |config| {
        config.header_read_timeout = Duration::from_secs(3);
    })
    .await;
    let addr = rig.api.as_ref().unwrap().local_addr();
    let stream = TcpStream::connect(addr).await.unwrap();
    let closed_after = trickle(stream, Slow::Head, Duration::from_secs(15))
        .await
        .expect("the server closes a connection whose head never ends");
    assert!(
        closed_after >= Duration::from_secs(2) && closed_after < Duration::from_secs(6),
        "closed after {closed_after:?}"
    );
}

/// Sends `GET /health` on `stream` and reads one whole answer (keep-alive).
async fn health_on(stream: &mut TcpStream) -> bool {
    const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    if stream.write_all(REQUEST).await.is_err() {
        return false;
    }
    let mut buf = vec![0_u8; 4096];
    let mut got = Vec::new();
    // The health answer is small and has a Content-Length; read until its
    // body is in.
    while !answer_complete(&got) {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

fn answer_complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    body.len() >= length
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_bound() {
    let rig = Rig::with(SimConfig::default(), |config| {
        config.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = rig.api.as_ref().unwrap().local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(health_on(&mut stream).await);
    // Kept alive after the answer, then closed once idle too long.
    let idle = Instant::now();
    let mut buf = vec![0_u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the idle connection is closed");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let idle = idle.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle"
    );
}

/// The header bound runs from a head's first byte: a keep-alive client that
/// waits longer than it between two requests is still served (closing it
/// there would race the client's next request and show it a reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_quiet_past_the_header_bound_takes_its_next_request() {
    let rig = Rig::with(SimConfig::default(), |config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = rig.api.as_ref().unwrap().local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(health_on(&mut stream).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        health_on(&mut stream).await,
        "the connection was closed between requests"
    );
}

/// A connection that never sends a request has only the header bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_new_connection_is_closed_at_the_header_bound() {
    let rig = Rig::with(SimConfig::default(), |config| {
        config.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = rig.api.as_ref().unwrap().local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    let mut buf = vec![0_u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the silent connection is closed");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_more_slow_heads_and_bodies_than_the_cap_are_held() {
    const CAP: usize = 40;
    const FLOOD: usize = 100;
    let rig = Rig::with(SimConfig::default(), |config| {
        config.max_connections = CAP;
    })
    .await;
    let addr = rig.api.as_ref().unwrap().local_addr();
    let mut flood = Vec::new();
    for n in 0..FLOOD {
        let stream = TcpStream::connect(addr).await.unwrap();
        let slow = if n % 2 == 0 { Slow::Head } else { Slow::Body };
        flood.push(tokio::spawn(trickle(stream, slow, Duration::from_secs(8))));
    }
    // Let every flood connection send its first lines.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        assert!(
            health_answers(addr, Duration::from_secs(2)).await,
            "/health did not answer within 2 s during the flood"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Authenticated routes answer too.
    let devices = rig.call(reqwest::Method::GET, "/devices").await;
    devices.expect(200, "SUCCESS");
    let mut closed = 0;
    for connection in flood {
        if connection.await.unwrap().is_some() {
            closed += 1;
        }
    }
    // The server never held more than the cap: the oldest slow connections
    // made room for the rest and for the health checks.
    assert!(
        closed >= FLOOD - CAP,
        "only {closed} of {FLOOD} were closed"
    );
    assert!(closed < FLOOD, "every slow connection was closed: {closed}");
}
