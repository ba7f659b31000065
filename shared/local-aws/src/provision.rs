//! Creating the template's storage (tables, buckets, queues) and state machines in the
//! emulator under a prefix, and naming its functions.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde::Serialize;
use serde_yaml::Value;

use crate::emulator::{ACCOUNT_ID, REGION};
use crate::template::{Lookup, Resolver, ResourceDecl, Template, TemplateError, list, prop};
use crate::{Error, ServiceError};

/// What kind of resource was provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    Table,
    Bucket,
    Queue,
    /// A function: named (so that `!Ref` and `!GetAtt .Arn` resolve) but not created; its
    /// code runs in-process (see `local_aws::lambda`).
    Function,
    StateMachine,
}

/// One provisioned resource.
#[derive(Debug, Clone, Serialize)]
pub struct Provisioned {
    pub logical_id: String,
    pub kind: Kind,
    /// Physical name: table, bucket, queue, function or state machine name.
    pub name: String,
    pub arn: String,
    /// Queue URL (queues only).
    pub url: Option<String>,
}

impl Provisioned {
    /// What `!Ref` gives: the URL for a queue, the ARN for a state machine, the name
    /// otherwise.
    pub fn reference(&self) -> &str {
        match self.kind {
            Kind::StateMachine => &self.arn,
            _ => self.url.as_deref().unwrap_or(&self.name),
        }
    }
}

/// The ARN of a Lambda function in the emulator's region and account:
/// `arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}`.
pub fn function_arn(function_name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}")
}

/// The result of provisioning: logical id → physical resource, and the functions' environment.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    prefix: String,
    items: BTreeMap<String, Provisioned>,
    env: BTreeMap<String, String>,
    function_env: BTreeMap<String, BTreeMap<String, String>>,
    skipped: Vec<(String, String)>,
}

impl Resources {
    /// The name prefix every physical name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A provisioned resource by logical id.
    pub fn get(&self, logical_id: &str) -> Option<&Provisioned> {
        self.items.get(logical_id)
    }

    /// All provisioned resources by logical id.
    pub fn iter(&self) -> impl Iterator<Item = &Provisioned> {
        self.items.values()
    }

    /// Physical table name of a `AWS::DynamoDB::Table`.
    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.name_of(logical_id, Kind::Table)
    }

    /// Physical bucket name of a `AWS::S3::Bucket`.
    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.name_of(logical_id, Kind::Bucket)
    }

    /// Queue URL of a `AWS::SQS::Queue`.
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id)
            .filter(|p| p.kind == Kind::Queue)
            .and_then(|p| p.url.as_deref())
    }

    fn name_of(&self, logical_id: &str, kind: Kind) -> Option<&str> {
        self.get(logical_id).filter(|p| p.kind == kind).map(|p| p.name.as_str())
    }

    /// Physical name of a function (`AWS::Serverless::Function`): `{prefix}-{LogicalId}`,
    /// at most 64 characters. The function is not created in the emulator; register a
    /// handler under this name with `local_aws::lambda::LambdaHost`.
    pub fn function_name(&self, logical_id: &str) -> Option<&str> {
        self.name_of(logical_id, Kind::Function)
    }

    /// Physical names of all functions, by logical id.
    pub fn function_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items
            .values()
            .filter(|p| p.kind == Kind::Function)
            .map(|p| (p.logical_id.as_str(), p.name.as_str()))
    }

    /// ARN of a state machine created from an `AWS::Serverless::StateMachine` (feature `sfn`).
    pub fn state_machine_arn(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id)
            .filter(|p| p.kind == Kind::StateMachine)
            .map(|p| p.arn.as_str())
    }

    /// ARN of any provisioned resource.
    pub fn arn(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id).map(|p| p.arn.as_str())
    }

    /// `Globals.Function.Environment.Variables`, resolved: e.g. `CUSTOMERS_TABLE` → the
    /// physical name of `CustomersTable`. Variables that refer to something not provisioned
    /// locally (a function, say) are left out and logged.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// A function's environment as deployed: the globals, overridden by its own variables.
    /// Unknown functions get the globals.
    pub fn function_env(&self, logical_id: &str) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        if let Some(own) = self.function_env.get(logical_id) {
            env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env
    }

    /// Resources of types not provisioned locally: (logical id, type).
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }
}

impl Lookup for BTreeMap<String, Provisioned> {
    fn reference(&self, logical_id: &str) -> Option<String> {
        self.get(logical_id).map(|p| p.reference().to_owned())
    }

    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String> {
        let p = self.get(logical_id)?;
        match (p.kind, attribute) {
            (_, "Arn") => Some(p.arn.clone()),
            (Kind::Queue, "QueueName") => Some(p.name.clone()),
            (Kind::Queue, "QueueUrl") => p.url.clone(),
            (Kind::Bucket, "DomainName") => Some(format!("{}.s3.amazonaws.com", p.name)),
            (Kind::Bucket, "RegionalDomainName") => Some(format!("{}.s3.{REGION}.amazonaws.com", p.name)),
            (Kind::StateMachine, "Name") => Some(p.name.clone()),
            _ => None,
        }
    }
}

/// Provision every table, bucket (and, with the `sqs` feature, queue; with the `sfn`
/// feature, state machine) of `template`, each named `{prefix}-{LogicalId}` (made valid for
/// the service), name its functions the same way without creating them, and resolve the
/// functions' environment against all of it. Parameters take their defaults.
///
/// Order: tables, buckets and function names in document order, then queues (dead-letter
/// queues first), then state machines (those another one refers to first), so that a state
/// machine's `DefinitionSubstitutions` can name functions, queues and other state machines,
/// and a function's environment can name a state machine.
pub async fn provision_template(config: &SdkConfig, template: &Template, prefix: &str) -> Result<Resources, Error> {
    let prefix = slug(prefix, 32);
    let parameters = BTreeMap::new();
    let mut items: BTreeMap<String, Provisioned> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut queues = Vec::new();
    let mut machines = Vec::new();

    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let s3 = s3_client(config);

    for decl in template.resources() {
        let resolver = Resolver {
            template,
            parameters: &parameters,
            region: REGION,
            account_id: ACCOUNT_ID,
            stack_name: &prefix,
            resources: &items,
        };
        let made = match decl.kind.as_str() {
            "AWS::DynamoDB::Table" => create_table(&dynamodb, &resolver, decl, &prefix).await?,
            "AWS::S3::Bucket" => create_bucket(&s3, config, &resolver, decl, &prefix).await?,
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => name_function(decl, &prefix),
            "AWS::SQS::Queue" if cfg!(feature = "sqs") => {
                queues.push(decl);
                continue;
            }
            "AWS::Serverless::StateMachine" if cfg!(feature = "sfn") => {
                machines.push(decl);
                continue;
            }
            other => {
                tracing::debug!(logical_id = %decl.logical_id, kind = other, "not provisioned locally");
                skipped.push((decl.logical_id.clone(), other.to_owned()));
                continue;
            }
        };
        items.insert(decl.logical_id.clone(), made);
    }

    #[cfg(feature = "sqs")]
    sqs::create_queues(config, template, &parameters, &prefix, queues, &mut items).await?;
    #[cfg(not(feature = "sqs"))]
    debug_assert!(queues.is_empty());

    #[cfg(feature = "sfn")]
    sfn::create_state_machines(config, template, &parameters, &prefix, machines, &mut items).await?;
    #[cfg(not(feature = "sfn"))]
    debug_assert!(machines.is_empty());

    let resolver = Resolver {
        template,
        parameters: &parameters,
        region: REGION,
        account_id: ACCOUNT_ID,
        stack_name: &prefix,
        resources: &items,
    };
    let env = resolve_env(&resolver, template.globals_env(), "Globals");
    let mut function_env = BTreeMap::new();
    for function in template.functions() {
        let vars = template.function_env(function)?;
        function_env.insert(function.to_owned(), resolve_env(&resolver, &vars, function));
    }
    if !skipped.is_empty() {
        tracing::info!(
            count = skipped.len(),
            kinds = ?skipped.iter().map(|(_, k)| k.as_str()).collect::<std::collections::BTreeSet<_>>(),
            "resources of these types are not provisioned locally"
        );
    }
    Ok(Resources {
        prefix,
        items,
        env,
        function_env,
        skipped,
    })
}

fn resolve_env(resolver: &Resolver<'_>, vars: &[(String, Value)], owner: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (name, value) in vars {
        match resolver.string(value) {
            // A CloudFormation dynamic reference (a Secrets Manager secret, an SSM
            // parameter) has no local value: the local host supplies one.
            Ok(v) if v.contains("{{resolve:") => {
                tracing::debug!(owner, variable = %name, "dynamic reference left to the local host");
            }
            Ok(v) => {
                env.insert(name.clone(), v);
            }
            Err(e) => {
                tracing::info!(owner, variable = %name, error = %e, "environment variable left out");
            }
        }
    }
    env
}

/// An S3 client for the emulator (path-style addressing).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

fn at(decl: &ResourceDecl, field: &str) -> String {
    format!("{}.{field}", decl.logical_id)
}

fn missing(decl: &ResourceDecl, field: &str) -> TemplateError {
    TemplateError::Invalid {
        at: at(decl, field),
        msg: "missing".to_owned(),
    }
}

fn field(r: &Resolver<'_>, decl: &ResourceDecl, item: &Value, name: &str) -> Result<String, TemplateError> {
    match item.get(name) {
        Some(v) => r.string(v),
        None => Err(missing(decl, name)),
    }
}

fn key_schema(r: &Resolver<'_>, decl: &ResourceDecl, items: &[Value]) -> Result<Vec<KeySchemaElement>, Error> {
    items
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(field(r, decl, k, "AttributeName")?)
                .key_type(KeyType::from(field(r, decl, k, "KeyType")?.as_str()))
                .build()
                .map_err(|e| build_error(decl, e))
        })
        .collect()
}

fn projection(r: &Resolver<'_>, index: &Value) -> Result<Projection, Error> {
    let p = prop(index, "Projection");
    let kind = match p.get("ProjectionType") {
        Some(v) => r.string(v)?,
        None => "ALL".to_owned(),
    };
    let non_key = list(p, "NonKeyAttributes")
        .iter()
        .map(|v| r.string(v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Projection::builder()
        .projection_type(ProjectionType::from(kind.as_str()))
        .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
        .build())
}

fn build_error(decl: &ResourceDecl, e: impl std::fmt::Display) -> Error {
    Error::Template(TemplateError::Invalid {
        at: decl.logical_id.clone(),
        msg: e.to_string(),
    })
}

/// Tables are created with on-demand billing whatever the template says: the emulator does
/// not throttle, and PITR/SSE/tags do not change behaviour locally.
async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    r: &Resolver<'_>,
    decl: &ResourceDecl,
    prefix: &str,
) -> Result<Provisioned, Error> {
    let props = &decl.properties;
    let name = table_name(prefix, &decl.logical_id);
    let mut req = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest);
    for a in list(props, "AttributeDefinitions") {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(field(r, decl, a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(field(r, decl, a, "AttributeType")?.as_str()))
                .build()
                .map_err(|e| build_error(decl, e))?,
        );
    }
    for k in key_schema(r, decl, list(props, "KeySchema"))? {
        req = req.key_schema(k);
    }
    for g in list(props, "GlobalSecondaryIndexes") {
        let mut b = GlobalSecondaryIndex::builder()
            .index_name(field(r, decl, g, "IndexName")?)
            .projection(projection(r, g)?);
        for k in key_schema(r, decl, list(g, "KeySchema"))? {
            b = b.key_schema(k);
        }
        req = req.global_secondary_indexes(b.build().map_err(|e| build_error(decl, e))?);
    }
    for l in list(props, "LocalSecondaryIndexes") {
        let mut b = LocalSecondaryIndex::builder()
            .index_name(field(r, decl, l, "IndexName")?)
            .projection(projection(r, l)?);
        for k in key_schema(r, decl, list(l, "KeySchema"))? {
            b = b.key_schema(k);
        }
        req = req.local_secondary_indexes(b.build().map_err(|e| build_error(decl, e))?);
    }
    if let Some(view) = props.get("StreamSpecification").and_then(|s| s.get("StreamViewType")) {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(r.string(view)?.as_str()))
                .build()
                .map_err(|e| build_error(decl, e))?,
        );
    }
    let out = req
        .send()
        .await
        .map_err(|e| service(decl, aws_sdk_dynamodb::Error::from(e)))?;

    let ttl = prop(props, "TimeToLiveSpecification");
    let ttl_on = match ttl.get("Enabled") {
        Some(v) => r.boolean(v)?,
        None => false,
    };
    if ttl_on {
        client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(field(r, decl, ttl, "AttributeName")?)
                    .enabled(true)
                    .build()
                    .map_err(|e| build_error(decl, e))?,
            )
            .send()
            .await
            .map_err(|e| service(decl, aws_sdk_dynamodb::Error::from(e)))?;
    }
    let arn = out
        .table_description()
        .and_then(|d| d.table_arn())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"));
    tracing::debug!(logical_id = %decl.logical_id, %name, "table created");
    Ok(Provisioned {
        logical_id: decl.logical_id.clone(),
        kind: Kind::Table,
        name,
        arn,
        url: None,
    })
}

/// Buckets get versioning if the template enables it; encryption, public-access blocks and
/// lifecycle rules do not change behaviour locally and are not applied.
async fn create_bucket(
    client: &aws_sdk_s3::Client,
    config: &SdkConfig,
    r: &Resolver<'_>,
    decl: &ResourceDecl,
    prefix: &str,
) -> Result<Provisioned, Error> {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, VersioningConfiguration,
    };
    let name = bucket_name(prefix, &decl.logical_id);
    let mut req = client.create_bucket().bucket(&name);
    let region = config.region().map(|r| r.as_ref()).unwrap_or(REGION);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    req.send()
        .await
        .map_err(|e| service(decl, aws_sdk_s3::Error::from(e)))?;

    let versioning = prop(&decl.properties, "VersioningConfiguration");
    let versioned = match versioning.get("Status") {
        Some(status) => r.string(status)? == "Enabled",
        None => false,
    };
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| service(decl, aws_sdk_s3::Error::from(e)))?;
    }
    tracing::debug!(logical_id = %decl.logical_id, %name, "bucket created");
    Ok(Provisioned {
        logical_id: decl.logical_id.clone(),
        kind: Kind::Bucket,
        arn: format!("arn:aws:s3:::{name}"),
        name,
        url: None,
    })
}

/// A function is not created in the emulator, only named (its handler runs in-process).
fn name_function(decl: &ResourceDecl, prefix: &str) -> Provisioned {
    let name = function_name(prefix, &decl.logical_id);
    Provisioned {
        logical_id: decl.logical_id.clone(),
        kind: Kind::Function,
        arn: function_arn(&name),
        name,
        url: None,
    }
}

/// Remove and return a pending resource that refers to no other pending one (so it can be
/// created now); `None` when nothing is pending, an error on a reference cycle.
#[cfg_attr(not(any(feature = "sqs", feature = "sfn")), allow(dead_code))]
fn take_ready<'t>(pending: &mut Vec<&'t ResourceDecl>, what: &str) -> Result<Option<&'t ResourceDecl>, Error> {
    if pending.is_empty() {
        return Ok(None);
    }
    let ready = pending.iter().position(|decl| {
        crate::template::references(&decl.properties)
            .iter()
            .all(|id| !pending.iter().any(|p| &p.logical_id == id))
    });
    match ready {
        Some(i) => Ok(Some(pending.remove(i))),
        None => {
            let ids: Vec<_> = pending.iter().map(|d| d.logical_id.as_str()).collect();
            Err(TemplateError::Invalid {
                at: ids.join(", "),
                msg: format!("{what} refer to each other in a cycle"),
            }
            .into())
        }
    }
}

fn service(decl: &ResourceDecl, e: impl Into<ServiceError>) -> Error {
    Error::Provision {
        logical_id: decl.logical_id.clone(),
        source: Box::new(e.into()),
    }
}

#[cfg(feature = "sqs")]
mod sqs {
    use super::*;
    use aws_sdk_sqs::types::QueueAttributeName;

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
            let resolver = Resolver {
                template,
                parameters,
                region: REGION,
                account_id: ACCOUNT_ID,
                stack_name: prefix,
                resources: &*items,
            };
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
}

#[cfg(feature = "sfn")]
mod sfn {
    use super::*;
    use aws_sdk_sfn::types::StateMachineType;

    /// Create the state machines, those referred to by others first.
    pub(super) async fn create_state_machines(
        config: &SdkConfig,
        template: &Template,
        parameters: &BTreeMap<String, String>,
        prefix: &str,
        mut pending: Vec<&ResourceDecl>,
        items: &mut BTreeMap<String, Provisioned>,
    ) -> Result<(), Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let client = aws_sdk_sfn::Client::new(config);
        let base_dir = match template.base_dir() {
            Some(dir) => dir.to_path_buf(),
            None => crate::project_root()?,
        };
        while let Some(decl) = take_ready(&mut pending, "state machines")? {
            let resolver = Resolver {
                template,
                parameters,
                region: REGION,
                account_id: ACCOUNT_ID,
                stack_name: prefix,
                resources: &*items,
            };
            let made = create_state_machine(&client, &resolver, decl, prefix, &base_dir).await?;
            items.insert(decl.logical_id.clone(), made);
        }
        Ok(())
    }

    /// `DefinitionUri` (a path relative to the template's directory) or an inline
    /// `Definition`, with `DefinitionSubstitutions` applied, created under
    /// `{prefix}-{LogicalId}` with a dummy role. `Role`, `Policies`, `Events`, `Logging`,
    /// `Tracing` and `Name` do not matter locally and are ignored.
    async fn create_state_machine(
        client: &aws_sdk_sfn::Client,
        r: &Resolver<'_>,
        decl: &ResourceDecl,
        prefix: &str,
        base_dir: &std::path::Path,
    ) -> Result<Provisioned, Error> {
        let props = &decl.properties;
        let text = match (props.get("DefinitionUri"), props.get("Definition")) {
            (Some(Value::String(path)), _) => {
                let path = base_dir.join(path);
                std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                    path: path.display().to_string(),
                    source,
                })?
            }
            (Some(_), _) => {
                return Err(TemplateError::Invalid {
                    at: at(decl, "DefinitionUri"),
                    msg: "only a local file path is supported, not an S3 location".to_owned(),
                }
                .into());
            }
            (None, Some(inline)) => r.json(inline)?.to_string(),
            (None, None) => return Err(missing(decl, "DefinitionUri or Definition").into()),
        };
        let definition = substitute(r, decl, &text)?;
        let kind = match props.get("Type") {
            Some(v) => r.string(v)?,
            None => "STANDARD".to_owned(),
        };
        let name = state_machine_name(prefix, &decl.logical_id);
        let out = client
            .create_state_machine()
            .name(&name)
            .definition(definition)
            .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-sfn"))
            .r#type(StateMachineType::from(kind.to_ascii_uppercase().as_str()))
            .send()
            .await
            .map_err(|e| service(decl, aws_sdk_sfn::Error::from(e)))?;
        tracing::debug!(logical_id = %decl.logical_id, %name, "state machine created");
        Ok(Provisioned {
            logical_id: decl.logical_id.clone(),
            kind: Kind::StateMachine,
            arn: out.state_machine_arn().to_owned(),
            name,
            url: None,
        })
    }

    /// Replace `${Name}` for every `DefinitionSubstitutions` entry. An entry that cannot be
    /// resolved (it names a resource that is not provisioned locally) is an error: the
    /// definition would otherwise fail later, at run time, in a less obvious way.
    fn substitute(r: &Resolver<'_>, decl: &ResourceDecl, text: &str) -> Result<String, Error> {
        let Some(subs) = decl.properties.get("DefinitionSubstitutions") else {
            return Ok(text.to_owned());
        };
        let subs = subs.as_mapping().ok_or_else(|| TemplateError::Invalid {
            at: at(decl, "DefinitionSubstitutions"),
            msg: "not a mapping".to_owned(),
        })?;
        let mut out = text.to_owned();
        for (key, value) in subs {
            let key = key
                .as_str()
                .ok_or_else(|| missing(decl, "DefinitionSubstitutions key"))?;
            let value = r.string(value).map_err(|e| TemplateError::Invalid {
                at: at(decl, &format!("DefinitionSubstitutions.{key}")),
                msg: e.to_string(),
            })?;
            out = out.replace(&format!("${{{key}}}"), &value);
        }
        Ok(out)
    }
}

/// Lowercase letters, digits and single hyphens, at most `max` characters, never empty.
fn slug(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(max);
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "x".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn short_hash(text: &str) -> String {
    // A fixed-key hash: the same logical id always shortens to the same name.
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(text.as_bytes());
    format!("{:08x}", h.finish() as u32)
}

/// Fit `{prefix}-{rest}` into `max` characters; when it does not fit, the tail of `rest`
/// is replaced by a hash of it so that names stay distinct.
fn fit(prefix: &str, rest: &str, max: usize) -> String {
    let full = format!("{prefix}-{rest}");
    if full.len() <= max {
        return full;
    }
    let hash = short_hash(rest);
    let room = max.saturating_sub(prefix.len() + hash.len() + 2);
    let head: String = rest.chars().take(room).collect();
    let head = head.trim_end_matches(['-', '.', '_']);
    if head.is_empty() {
        format!("{prefix}-{hash}")
    } else {
        format!("{prefix}-{head}-{hash}")
    }
}

/// DynamoDB: `[a-zA-Z0-9_.-]`, 3–255 characters.
pub(crate) fn table_name(prefix: &str, logical_id: &str) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    fit(prefix, &rest, 255)
}

/// S3: lowercase letters, digits and hyphens, 3–63 characters, starting with a letter or digit.
pub(crate) fn bucket_name(prefix: &str, logical_id: &str) -> String {
    fit(prefix, &slug(logical_id, 63), 63)
}

/// SQS: `[a-zA-Z0-9_-]`, at most 80 characters including a `.fifo` suffix.
#[cfg_attr(not(feature = "sqs"), allow(dead_code))]
pub(crate) fn queue_name(prefix: &str, logical_id: &str, fifo: bool) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    if fifo {
        format!("{}.fifo", fit(prefix, &rest, 75))
    } else {
        fit(prefix, &rest, 80)
    }
}

/// Lambda: `[a-zA-Z0-9_-]`, 1–64 characters.
pub(crate) fn function_name(prefix: &str, logical_id: &str) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    fit(prefix, &rest, 64)
}

/// Step Functions: `[a-zA-Z0-9_-]`, 1–80 characters.
#[cfg_attr(not(feature = "sfn"), allow(dead_code))]
pub(crate) fn state_machine_name(prefix: &str, logical_id: &str) -> String {
    let rest: String = logical_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    fit(prefix, &rest, 80)
}

/// A prefix unique across processes and calls: the slug of `name` (at most 20 characters)
/// and a random suffix.
pub fn unique_prefix(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let mut n = h.finish();
    let mut suffix = String::new();
    for _ in 0..8 {
        let d = (n % 36) as u32;
        suffix.push(char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    format!("{}-{suffix}", slug(name, 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_service_rules() {
        let prefix = unique_prefix("Settles a Cycle! twice");
        assert!(prefix.starts_with("settles-a-cycle-twic-"), "{prefix}");
        assert_eq!(prefix.len(), "settles-a-cycle-twic-".len() + 8);

        let b = bucket_name(&prefix, "DataBucket");
        assert_eq!(b, format!("{prefix}-databucket"));
        let long = bucket_name(&prefix, "AVeryLongLogicalIdForTheRenderedInvoicesBucketOfTheProject");
        assert!(long.len() <= 63, "{long}");
        assert!(
            long.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
        assert_ne!(
            long,
            bucket_name(&prefix, "AVeryLongLogicalIdForTheRenderedInvoicesBucketOfTheProjectB")
        );

        assert_eq!(table_name("p", "CustomersTable"), "p-CustomersTable");
        assert_eq!(queue_name("p", "EmailQueue", true), "p-EmailQueue.fifo");
        assert!(queue_name(&prefix, &"Q".repeat(100), true).len() <= 80);
        assert!(queue_name(&prefix, &"Q".repeat(100), false).len() <= 80);

        assert_eq!(function_name("p", "SettleShardFunction"), "p-SettleShardFunction");
        let long = function_name(&prefix, &"F".repeat(70));
        assert!(long.len() <= 64, "{long}");
        assert_ne!(long, function_name(&prefix, &"F".repeat(71)));
        assert!(state_machine_name(&prefix, &"S".repeat(100)).len() <= 80);
        assert_eq!(
            function_arn("p-F"),
            format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:p-F")
        );
    }

    #[test]
    fn prefixes_are_unique() {
        let a: std::collections::BTreeSet<_> = (0..1000).map(|_| unique_prefix("t")).collect();
        assert_eq!(a.len(), 1000);
    }

    #[test]
    fn slug_is_never_empty() {
        assert_eq!(slug("---", 10), "x");
        assert_eq!(slug("A__B", 10), "a-b");
    }
}
