//! `RecordFailure`: consumes the delivery dead-letter queue into the failure
//! log, one record per message an operator can act on.
//!
//! * A delivery message (`{"delivery_id", "channel", …}`, ids only) becomes
//!   a record under its cycle and delivery id (stage `dead-letter`), with the
//!   channel, the attempts and last error code when the message carries
//!   them, how often SQS delivered it, and the body itself as what it takes
//!   to replay it (ids only, so nothing personal is stored).
//! * A body that is not a delivery message is recorded too, under the
//!   unknown cycle (`-`) and the SQS message id, with the parse error
//!   ([`domain::decode`], [`DeadLetter::check`]: it names the field and what was
//!   expected, never the value) — it is parked, not lost. A letter whose ids
//!   are not id-shaped (an email in `run_id`) is such a body: only a letter
//!   that holds ids, codes and a time is kept to replay.
//! * Records are upserts (see [`adapters::failures`]): a redriven message
//!   that dies again counts an occurrence instead of adding a record.
//! * Only a message whose record could not be written is reported back
//!   (`ReportBatchItemFailures`), so one failure never re-drives the batch;
//!   an invocation itself never fails ([`RecordError`] has no values).

use adapters::failures::{FailureLog, FailureStage, NewFailure};
use adapters::{ConfigError, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use domain::delivery::DeadLetter;
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;

pub struct Deps {
    pub failures: FailureLog,
    /// Records written at once.
    pub concurrency: usize,
}

impl Deps {
    /// From `FAILURES_TABLE`.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Deps {
            failures: FailureLog::new(adapters::dynamodb_client(sdk), vars.required("FAILURES_TABLE")?),
            concurrency: 10,
        })
    }
}

/// What ends an invocation of `RecordFailure`: nothing. A message whose record
/// cannot be written is handed back alone (a batch item failure) and the rest
/// of the batch is deleted, so the type has no values.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {}

impl runtime::ErrorType for RecordError {
    fn error_type(&self) -> &'static str {
        match *self {}
    }
}

runtime::diagnostic_from!(RecordError);

/// The failure record for one dead-lettered message.
pub fn failure_of(message: &SqsMessage) -> NewFailure {
    let message_id = message.message_id.clone().unwrap_or_default();
    let body = message.body.clone().unwrap_or_default();
    let received = message.attributes.get("ApproximateReceiveCount").map(String::as_str);
    let parsed = domain::decode::from_str::<DeadLetter>(&body)
        .map_err(|e| e.to_string())
        .and_then(|m| m.check().map(|_| m));
    match parsed {
        Ok(letter) => NewFailure::dead_letter(&letter, &body, received),
        Err(why) => NewFailure {
            cycle: None,
            subject: message_id,
            stage: FailureStage::DeadLetter,
            code: "malformed-message".into(),
            reason: format!(
                "the body is not a delivery message ({why}); after {} receives",
                received.unwrap_or("?")
            ),
            channel: None,
            attempts: 0,
            run_id: None,
            // Not kept: a body that is not ours may hold anything.
            replay: None,
        },
    }
}

pub async fn handle(deps: &Deps, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, RecordError> {
    let now = Utc::now();
    let failed: Vec<Option<String>> = stream::iter(event.payload.records)
        .map(|m| async move {
            let f = failure_of(&m);
            match deps.failures.record(&f, now).await {
                Ok(()) => {
                    tracing::warn!(subject = %f.subject, code = %f.code, "dead-lettered message recorded");
                    None
                }
                Err(e) => {
                    tracing::error!(subject = %f.subject, error = %e, "could not record a dead-lettered message");
                    m.message_id
                }
            }
        })
        .buffer_unordered(deps.concurrency.max(1))
        .collect()
        .await;
    Ok(runtime::batch_response(failed.into_iter().flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Channel;

    fn message(body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some("m-1".into());
        m.body = Some(body.into());
        m.attributes.insert("ApproximateReceiveCount".into(), "5".into());
        m
    }

    #[test]
    fn a_delivery_message_is_recorded_under_its_cycle_with_what_replays_it() {
        let body =
            r#"{"delivery_id":"2026-11#00003#C0000042","channel":"email","run_id":"dispatch-2026-12-15T01:00:00Z"}"#;
        let f = failure_of(&message(body));
        assert_eq!(f.cycle.map(|c| c.to_string()).as_deref(), Some("2026-11"));
        assert_eq!(f.subject, "2026-11#00003#C0000042");
        assert_eq!((f.code.as_str(), f.channel), ("dead-lettered", Some(Channel::Email)));
        assert!(f.reason.contains("after 5 receives"), "{}", f.reason);
        assert_eq!(f.replay.as_deref(), Some(body));
        let given_up =
            r#"{"delivery_id":"2026-11#00003#C0000042","channel":"sms","attempts":3,"last_error":"MockTransient"}"#;
        let f = failure_of(&message(given_up));
        assert_eq!((f.code.as_str(), f.attempts), ("MockTransient", 3));
        let from_sender = r#"{"delivery_id":"2026-11#00003#C0000042","channel":"sms","attempts":3,"last_error":"MockTransient","dead_at":"2026-12-15T01:02:03Z"}"#;
        let f = failure_of(&message(from_sender));
        assert!(
            f.reason
                .contains("sms sender gave up at 2026-12-15T01:02:03Z after 3 attempts"),
            "{}",
            f.reason
        );
    }

    #[test]
    fn anything_else_is_parked_under_its_message_id_without_its_body() {
        for body in [
            "not json",
            r#"{"delivery_id":"x","channel":"email"}"#,
            r#"{"delivery_id":"2026-11#00001#C1","channel":"email","email":"a@b.c"}"#,
            r#"{"delivery_id":"2026-11#00001#C1","channel":"kim.minjun.1987@example-mail.co.kr"}"#,
            r#"{"delivery_id":"2026-11#00001#C1","channel":"sms","run_id":"kim.minjun.1987@example-mail.co.kr"}"#,
            r#"{"delivery_id":"2026-11#00001#C1","channel":"sms","last_error":"+82 10-1234-5678"}"#,
            r#"{"delivery_id":"2026-11#00001#C1","channel":"sms","attempts":"+82 10-1234-5678"}"#,
            r#"{"delivery_id":"2026-11#00001#kim.minjun.1987@example-mail.co.kr","channel":"sms"}"#,
        ] {
            let f = failure_of(&message(body));
            assert_eq!(
                (f.cycle, f.subject.as_str(), f.code.as_str()),
                (None, "m-1", "malformed-message"),
                "{body}"
            );
            assert!(f.replay.is_none());
            assert!(!f.reason.contains("a@b.c"), "{}", f.reason);
            for value in ["kim.minjun.1987@example-mail.co.kr", "+82 10-1234-5678"] {
                assert!(!domain::text::echoes(&f.reason, value), "{}", f.reason);
            }
            assert!(f.reason.len() <= domain::text::MAX_REASON_BYTES);
        }
    }
}
