//! `billingctl console`: the operators' web console, served on a loopback port by the
//! operator's own billingctl, so that no new endpoint is opened in the account and no second
//! login exists.
//!
//! * **The page** ([`assets`]) is embedded in the binary: HTML, JavaScript and CSS with no
//!   external address, under a strict Content-Security-Policy.
//! * **Its calls** (`/api/...`) go to the admin API signed with SigV4 under the operator's AWS
//!   credentials ([`crate::api::Api`]), so the admin API sees, checks and audits the
//!   operator's own IAM identity and role, exactly as for every billingctl command.
//! * **Who may use it** ([`guard`]): a local server that signs with the operator's credentials
//!   must not sign for anyone else. The address printed at start carries a random session
//!   token; opening it sets an `HttpOnly`, `SameSite=Strict` cookie, and every other request
//!   needs that cookie. The `Host` header must name the loopback address it listens on (a
//!   DNS-rebinding page cannot pass), and a command (`POST`, `PUT`, `DELETE`) must come from
//!   the page's own origin (another site open in the same browser cannot send one).
//! * **Nothing personal in the browser**: every answer is `Cache-Control: no-store`; the
//!   invoice preview is served under an opaque token ([`routes`]), never under an address
//!   that names the customer.

mod assets;
mod guard;
mod routes;

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::{Api, Failure};

/// What the page learns of where it runs (`GET /console/session`).
pub(crate) struct Session {
    pub(crate) stack: Option<String>,
    pub(crate) region: String,
    pub(crate) cycle: Option<String>,
}

/// Binds `127.0.0.1:port`, prints the address to open, and serves until Ctrl-C.
pub(crate) async fn serve(api: Api, session: Session, port: u16) -> Result<(), Failure> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::Other(format!("the listening address: {e}")))?
        .port();
    let token = guard::new_token().map_err(|e| Failure::Other(format!("no session token: {e}")))?;
    let state = Arc::new(routes::Console::new(
        api,
        session,
        guard::Guard::new(port, token.clone()),
    ));
    println!("console on http://127.0.0.1:{port}/login?token={token} (Ctrl-C stops)");
    let _ = std::io::stdout().flush();
    tokio::select! {
        () = accept(listener, state) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Serves every connection the listener accepts, a task each.
async fn accept(listener: TcpListener, state: Arc<routes::Console>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: a pause, not a spin.
                eprintln!("billingctl console: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(state.answer(req).await) }
            });
            // A browser closing a connection midway is not worth a line.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
