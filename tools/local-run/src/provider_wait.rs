//! How long a sender's invocation waits on its provider: the wall time during
//! which at least one of its provider calls is unanswered.
//!
//! The month's cost report bills the senders' time in the handler, and the
//! mock provider answers after a second (its default latency, a product
//! feature), where SES answers in a fraction of that. The wait is measured
//! here so that the report can price it apart, as it does the mock's send
//! log. A batch's sends overlap (`buffer_unordered`), so the wait is the union
//! of the calls' spans, not their sum: ten sends answered together after a
//! second are one second of the invocation.
//!
//! [`measured`] runs a handler with a fresh tally in a task-local; the
//! [`Waited`] wrapper around each provider adds its calls' spans to the tally
//! of the task that makes them. A call outside [`measured`] is not counted.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use futures::future::BoxFuture;
use providers::{Accepted, EmailProvider, Lookup, OutgoingEmail, OutgoingSms, ProviderError, SmsProvider};

tokio::task_local! {
    static TALLY: Arc<Tally>;
}

/// One invocation's wait: calls in flight, since when, and the wait so far.
#[derive(Default)]
struct Tally(Mutex<(u32, Option<Instant>, Duration)>);

impl Tally {
    fn enter(&self) {
        if let Ok(mut t) = self.0.lock() {
            if t.0 == 0 {
                t.1 = Some(Instant::now());
            }
            t.0 += 1;
        }
    }

    fn leave(&self) {
        if let Ok(mut t) = self.0.lock() {
            t.0 = t.0.saturating_sub(1);
            if t.0 == 0
                && let Some(since) = t.1.take()
            {
                t.2 += since.elapsed();
            }
        }
    }

    fn total(&self) -> Duration {
        self.0.lock().map(|t| t.2).unwrap_or_default()
    }
}

/// A call in flight for as long as it lives (a call whose future is dropped unanswered
/// stops waiting then).
struct InFlight(Option<Arc<Tally>>);

impl InFlight {
    fn start() -> Self {
        let tally = TALLY.try_with(Arc::clone).ok();
        if let Some(t) = &tally {
            t.enter();
        }
        InFlight(tally)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.leave();
        }
    }
}

/// Runs `f` (one invocation) and says how long it waited on its providers.
pub async fn measured<F: Future>(f: F) -> (F::Output, Duration) {
    let tally = Arc::new(Tally::default());
    let out = TALLY.scope(tally.clone(), f).await;
    (out, tally.total())
}

/// A provider whose calls count as waiting (see the module doc).
pub struct Waited<P: ?Sized>(pub Arc<P>);

async fn timed<T>(call: impl Future<Output = T>) -> T {
    let _in_flight = InFlight::start();
    call.await
}

impl EmailProvider for Waited<dyn EmailProvider> {
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(timed(self.0.send_email(email)))
    }

    fn find_email<'a>(&'a self, idempotency_key: &'a str) -> BoxFuture<'a, Result<Lookup, ProviderError>> {
        Box::pin(timed(self.0.find_email(idempotency_key)))
    }

    fn answers_lookups(&self) -> bool {
        self.0.answers_lookups()
    }
}

impl SmsProvider for Waited<dyn SmsProvider> {
    fn send_sms<'a>(&'a self, sms: &'a OutgoingSms) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(timed(self.0.send_sms(sms)))
    }

    fn find_sms<'a>(&'a self, idempotency_key: &'a str) -> BoxFuture<'a, Result<Lookup, ProviderError>> {
        Box::pin(timed(self.0.find_sms(idempotency_key)))
    }

    fn answers_lookups(&self) -> bool {
        self.0.answers_lookups()
    }
}

/// `deps` with both providers' calls counted as waiting.
pub fn waited(mut deps: sender::Deps) -> sender::Deps {
    deps.email = Arc::new(Waited(deps.email));
    deps.sms = Arc::new(Waited(deps.sms));
    deps
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(ms: u64) {
        timed(tokio::time::sleep(Duration::from_millis(ms))).await;
    }

    #[tokio::test]
    async fn overlapping_calls_count_once_and_gaps_not_at_all() {
        let ((), waited) = measured(async {
            // Three calls together: 200 ms (600 ms summed). A gap of 400 ms. Then one of 100 ms.
            futures::join!(call(200), call(200), call(150));
            tokio::time::sleep(Duration::from_millis(400)).await;
            call(100).await;
        })
        .await;
        // 300 ms; the calls' sum (650 ms) or the whole span (900 ms) would be far over.
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(600),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_call_outside_an_invocation_is_not_counted() {
        call(50).await;
        let ((), waited) = measured(async {}).await;
        assert_eq!(waited, Duration::ZERO);
    }
}
