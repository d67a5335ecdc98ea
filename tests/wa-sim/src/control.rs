//! A client of the control API that [`serve`](crate::serve) exposes, for
//! programs that run `wa-sim` as a separate process (tests, the benchmark).

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The control API of a running `wa-sim`, at `127.0.0.1:PORT` (the
/// `control_url` it prints, with or without `http://`).
#[derive(Debug, Clone)]
pub struct ControlClient {
    addr: String,
}

impl ControlClient {
    pub fn new(control_url: &str) -> ControlClient {
        ControlClient {
            addr: control_url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// One HTTP/1.1 request (one connection, closed after the answer).
    /// Returns the status and the JSON body (`null` when the body is not
    /// JSON). Errors are I/O errors or an answer that is not HTTP.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let response = String::from_utf8_lossy(&response);
        let not_http =
            || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
        let (head, body) = response.split_once("\r\n\r\n").ok_or_else(not_http)?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(not_http)?;
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// The phone `number` scans `qr`; returns the linked device's JID, or
    /// the simulator's refusal (status and body).
    pub async fn scan(&self, number: &str, qr: &str) -> Result<String, String> {
        let (status, body) = self
            .request(
                "POST",
                &format!("/phones/{number}/scan"),
                Some(&serde_json::json!({ "qr": qr })),
            )
            .await
            .map_err(|e| format!("control API unreachable: {e}"))?;
        match (status, body["jid"].as_str()) {
            (200, Some(jid)) => Ok(jid.to_string()),
            _ => Err(format!("{status}: {body}")),
        }
    }
}
