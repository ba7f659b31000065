//! A minimal HTTP/1.1 client for the emulator's admin API (`/moto-api/...`), loopback only.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// Send one request and return the status code and body.
pub(crate) async fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), Error> {
    let fail = |detail: String| Error::Admin {
        path: path.to_owned(),
        detail,
    };
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| fail(format!("only http:// endpoints are supported, not {endpoint}")))?
        .trim_end_matches('/');
    let authority = authority.split('/').next().unwrap_or(authority);

    let exchange = async {
        let mut stream = TcpStream::connect(authority).await?;
        let body = body.unwrap_or("");
        // Head and body in one write: two small writes can stall on Nagle + delayed ACK.
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        read_response(&mut stream).await
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| fail("timed out".to_owned()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail("malformed response".to_owned()))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Read one response: up to `Content-Length` when the server sends it (the server may keep
/// the connection open a while after answering), otherwise to the end of the stream.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]);
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if let Some(length) = length {
                let total = end + 4 + length;
                while raw.len() < total {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&chunk[..n]);
                }
                raw.truncate(total);
                return Ok(raw);
            }
            stream.read_to_end(&mut raw).await?;
            return Ok(raw);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// Like [`request`], but any status other than 2xx is an error.
pub(crate) async fn expect_ok(endpoint: &str, method: &str, path: &str, body: Option<&str>) -> Result<String, Error> {
    let (status, text) = request(endpoint, method, path, body).await?;
    if (200..300).contains(&status) {
        Ok(text)
    } else {
        Err(Error::Admin {
            path: path.to_owned(),
            detail: format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
        })
    }
}
