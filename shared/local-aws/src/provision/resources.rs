//! What provisioning made: each resource's kind, physical name and ARN, looked up by logical
//! id, and the functions' resolved environment.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::emulator::REGION;
use crate::template::Lookup;

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
    /// An `AWS::SecretsManager::Secret` of the stack (its value generated as
    /// `GenerateSecretString` asks, or its `SecretString`); `!Ref` gives its ARN.
    Secret,
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
            Kind::StateMachine | Kind::Secret => &self.arn,
            _ => self.url.as_deref().unwrap_or(&self.name),
        }
    }
}

/// The result of provisioning: logical id → physical resource, and the functions' environment.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub(super) prefix: String,
    /// Parameters given a value of this stack's own (the secrets' names).
    pub(super) parameters: BTreeMap<String, String>,
    pub(super) items: BTreeMap<String, Provisioned>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) function_env: BTreeMap<String, BTreeMap<String, String>>,
    pub(super) skipped: Vec<(String, String)>,
}

impl Resources {
    /// The name prefix every physical name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The value this stack gave a template parameter instead of its default (the name of a
    /// secret made for the stack, see `provision_template_with`).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
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
        // SAM's `{Function}Url` of a function with a `FunctionUrlConfig`: a stand-in URL of the
        // shape AWS gives (a 32-character id), since nothing serves it locally.
        if attribute == "FunctionUrl"
            && let Some(function) = logical_id.strip_suffix("Url").and_then(|f| self.get(f))
            && function.kind == Kind::Function
        {
            return Some(super::names::function_url(&function.name));
        }
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
