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
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
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
