//! A loopback HTTP/1 server loop for local endpoints: the [`LambdaHost`](crate::lambda::LambdaHost)
//! the emulator invokes, the admin API a local run serves (`tools/admin-local`), and
//! `tools/lambda-runner`'s Invoke endpoint and Lambda Runtime APIs.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves every connection `listener` accepts with `answer`, a task per connection, for as
/// long as the runtime runs. A failed accept (out of file descriptors and the like) is
/// logged and retried after a short pause rather than in a spin. `label` starts the log
/// lines (e.g. `"lambda host"`).
pub async fn serve<F, Fut>(listener: TcpListener, label: &'static str, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let answer = Arc::new(answer);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "{label}: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answered = answer(req);
                async move { Ok::<_, Infallible>(answered.await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "{label}: connection ended with an error");
            }
        });
    }
}
