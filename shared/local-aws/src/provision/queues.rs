//! `AWS::SQS::Queue` (feature `sqs`): attributes and redrive policies, dead-letter queues
//! first.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml::Value;

use super::names::queue_name;
use super::{Kind, Provisioned, missing, service, take_ready};
use crate::Error;
use crate::emulator::{ACCOUNT_ID, REGION};
use crate::template::{Resolver, ResourceDecl, Template};

/// Plain attributes copied from the template (`RedrivePolicy` is handled apart).
const ATTRIBUTES: [(&str, QueueAttributeName); 9] = [
    ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
    ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
    ("DelaySeconds", QueueAttributeName::DelaySeconds),
    ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
    (
        "ReceiveMessageWaitTimeSeconds",
        QueueAttributeName::ReceiveMessageWaitTimeSeconds,
    ),
    ("FifoQueue", QueueAttributeName::FifoQueue),
    (
        "ContentBasedDeduplication",
        QueueAttributeName::ContentBasedDeduplication,
    ),
    ("DeduplicationScope", QueueAttributeName::DeduplicationScope),
    ("FifoThroughputLimit", QueueAttributeName::FifoThroughputLimit),
];

/// Create queues so that a dead-letter queue exists before the queues that redrive to it.
pub(super) async fn create_queues(
    config: &SdkConfig,
    template: &Template,
    parameters: &BTreeMap<String, String>,
    prefix: &str,
    mut pending: Vec<&ResourceDecl>,
    items: &mut BTreeMap<String, Provisioned>,
) -> Result<(), Error> {
    let client = aws_sdk_sqs::Client::new(config);
    while let Some(decl) = take_ready(&mut pending, "queues")? {
        let resolver = Resolver::local(template, parameters, prefix, &*items);
        let made = create_queue(&client, &resolver, decl, prefix).await?;
        items.insert(decl.logical_id.clone(), made);
    }
    Ok(())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    r: &Resolver<'_>,
    decl: &ResourceDecl,
    prefix: &str,
) -> Result<Provisioned, Error> {
    let props = &decl.properties;
    let fifo = match props.get("FifoQueue") {
        Some(v) => r.boolean(v)?,
        None => false,
    };
    let name = queue_name(prefix, &decl.logical_id, fifo);
    let mut req = client.create_queue().queue_name(&name);
    for (prop_name, attr) in ATTRIBUTES {
        if let Some(v) = props.get(prop_name) {
            req = req.attributes(attr, r.string(v)?);
        }
    }
    if let Some(policy) = props.get("RedrivePolicy") {
        req = req.attributes(QueueAttributeName::RedrivePolicy, redrive(r, decl, policy)?);
    }
    let out = req
        .send()
        .await
        .map_err(|e| service(decl, aws_sdk_sqs::Error::from(e)))?;
    let url = out
        .queue_url()
        .ok_or_else(|| missing(decl, "QueueUrl (in the CreateQueue response)"))?
        .to_owned();
    tracing::debug!(logical_id = %decl.logical_id, %name, "queue created");
    Ok(Provisioned {
        logical_id: decl.logical_id.clone(),
        kind: Kind::Queue,
        arn: format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"),
        name,
        url: Some(url),
    })
}

/// `RedrivePolicy` as a mapping (`deadLetterTargetArn: !GetAtt Dlq.Arn`,
/// `maxReceiveCount: 5`) or already as a JSON string.
fn redrive(r: &Resolver<'_>, decl: &ResourceDecl, policy: &Value) -> Result<String, Error> {
    let Some(map) = policy.as_mapping() else {
        return Ok(r.string(policy)?);
    };
    let mut json = serde_json::Map::new();
    for (k, v) in map {
        let key = k.as_str().ok_or_else(|| missing(decl, "RedrivePolicy key"))?;
        let value = r.string(v)?;
        let value = match value.parse::<i64>() {
            Ok(n) if key == "maxReceiveCount" => serde_json::Value::from(n),
            _ => serde_json::Value::from(value),
        };
        json.insert(key.to_owned(), value);
    }
    Ok(serde_json::Value::Object(json).to_string())
}
