//! Who may use the console: the session token and its cookie, the `Host` header, and the
//! origin of a command (see the module doc of [`super`]).

use hyper::HeaderMap;

/// The session cookie's name before its port: browsers keep cookies by host, not by port, so
/// two consoles open at once (two stacks, two roles) each need a cookie of their own.
pub(crate) const COOKIE: &str = "billing_console";

/// A fresh session token: 32 random bytes from the operating system, as hex.
pub(crate) fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a request is refused before it is looked at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The `Host` header names another address (421).
    WrongHost,
    /// No session cookie, or another one (401).
    NoSession,
    /// A command from another origin, or with none (403).
    CrossOrigin,
}

/// The checks of one console: its port and its token.
pub(crate) struct Guard {
    port: u16,
    token: String,
}

impl Guard {
    pub(crate) fn new(port: u16, token: String) -> Guard {
        Guard { port, token }
    }

    /// This console's cookie name: [`COOKIE`] and the port.
    fn cookie_name(&self) -> String {
        format!("{COOKIE}_{}", self.port)
    }

    /// The `Set-Cookie` value that opens a session.
    pub(crate) fn cookie(&self) -> String {
        format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie_name(),
            self.token
        )
    }

    /// Whether `token` is this console's (compared in constant time).
    pub(crate) fn token_is(&self, token: &str) -> bool {
        same(token.as_bytes(), self.token.as_bytes())
    }

    /// `Host` names this console: `127.0.0.1:PORT` or `localhost:PORT`.
    pub(crate) fn host_ok(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get("host").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        host == format!("127.0.0.1:{}", self.port) || host == format!("localhost:{}", self.port)
    }

    /// The request may go on: the right host, the session cookie, and for a command
    /// (`unsafe_method`) the page's own origin.
    pub(crate) fn check(&self, headers: &HeaderMap, unsafe_method: bool) -> Result<(), Refusal> {
        if !self.host_ok(headers) {
            return Err(Refusal::WrongHost);
        }
        let name = self.cookie_name();
        let has_session = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(n, value)| n == name && self.token_is(value));
        if !has_session {
            return Err(Refusal::NoSession);
        }
        if unsafe_method {
            let origin = headers.get("origin").and_then(|v| v.to_str().ok());
            let ours = origin.is_some_and(|o| {
                o == format!("http://127.0.0.1:{}", self.port) || o == format!("http://localhost:{}", self.port)
            });
            let site_ok = headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .is_none_or(|s| s == "same-origin");
            if !ours || !site_ok {
                return Err(Refusal::CrossOrigin);
            }
        }
        Ok(())
    }
}

/// Equal byte strings, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_session_on_this_host_from_this_origin_passes() {
        let token = new_token().unwrap();
        assert_eq!(token.len(), 64);
        assert_ne!(token, new_token().unwrap());
        let guard = Guard::new(4100, token.clone());
        let cookie = format!("theme=dark; {COOKIE}_4101=other; {COOKIE}_4100={token}");
        let ok = headers(&[("host", "127.0.0.1:4100"), ("cookie", &cookie)]);
        assert_eq!(guard.check(&ok, false), Ok(()));
        assert_eq!(
            guard.check(&headers(&[("host", "localhost:4100"), ("cookie", &cookie)]), false),
            Ok(())
        );

        let rebound = headers(&[("host", "evil.example:4100"), ("cookie", &cookie)]);
        assert_eq!(guard.check(&rebound, false), Err(Refusal::WrongHost));
        let other_port = headers(&[("host", "127.0.0.1:4101"), ("cookie", &cookie)]);
        assert_eq!(guard.check(&other_port, false), Err(Refusal::WrongHost));
        assert_eq!(
            guard.check(&headers(&[("host", "127.0.0.1:4100")]), false),
            Err(Refusal::NoSession)
        );
        let wrong = format!("{COOKIE}_4100={}", new_token().unwrap());
        assert_eq!(
            guard.check(&headers(&[("host", "127.0.0.1:4100"), ("cookie", &wrong)]), false),
            Err(Refusal::NoSession)
        );
        // Another console's cookie with this console's token is not this console's session.
        let wrong = format!("{COOKIE}_4101={token}");
        assert_eq!(
            guard.check(&headers(&[("host", "127.0.0.1:4100"), ("cookie", &wrong)]), false),
            Err(Refusal::NoSession)
        );

        // A command needs the page's own origin.
        assert_eq!(guard.check(&ok, true), Err(Refusal::CrossOrigin));
        let same_origin = headers(&[
            ("host", "127.0.0.1:4100"),
            ("cookie", &cookie),
            ("origin", "http://127.0.0.1:4100"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(guard.check(&same_origin, true), Ok(()));
        let cross = headers(&[
            ("host", "127.0.0.1:4100"),
            ("cookie", &cookie),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(guard.check(&cross, true), Err(Refusal::CrossOrigin));
        let cross_site = headers(&[
            ("host", "127.0.0.1:4100"),
            ("cookie", &cookie),
            ("origin", "http://127.0.0.1:4100"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(guard.check(&cross_site, true), Err(Refusal::CrossOrigin));
        assert!(guard.cookie().contains("HttpOnly") && guard.cookie().contains("SameSite=Strict"));
    }
}
