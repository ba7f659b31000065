//! Creating the template's storage (tables, buckets, queues) and state machines in the
//! emulator under a prefix, and naming its functions.
//!
//! This file holds the order of creation and the functions' environment; each kind of
//! resource is created in its own module (`tables`, `buckets`, `queues`, `state_machines`),
//! physical names are made in `names`, and what was made is described in `resources`.

mod buckets;
mod names;
#[cfg(feature = "sqs")]
mod queues;
mod resources;
mod secrets;
#[cfg(feature = "sfn")]
mod state_machines;
mod tables;

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use serde_yaml::Value;

pub use self::buckets::s3_client;
use self::names::function_name;
pub use self::names::{function_arn, unique_prefix};
pub use self::resources::{Kind, Provisioned, Resources};
pub use self::secrets::{LocalSecret, secret_name};
use crate::template::{Resolver, ResourceDecl, Template, TemplateError};
use crate::{Error, ServiceError};

/// Provision every table, bucket (and, with the `sqs` feature, queue; with the `sfn`
/// feature, state machine) of `template`, each named `{prefix}-{LogicalId}` (made valid for
/// the service), name its functions the same way without creating them, and resolve the
/// functions' environment against all of it. Parameters take their defaults.
///
/// [`provision_template_with`] also creates the Secrets Manager secrets some parameters name.
///
/// Order: tables, buckets and function names in document order, then queues (dead-letter
/// queues first), then state machines (those another one refers to first), so that a state
/// machine's `DefinitionSubstitutions` can name functions, queues and other state machines,
/// and a function's environment can name a state machine.
pub async fn provision_template(config: &SdkConfig, template: &Template, prefix: &str) -> Result<Resources, Error> {
    provision_template_with(config, template, prefix, &[]).await
}

/// [`provision_template`], and first one Secrets Manager secret per entry of `secrets` whose
/// parameter the template declares, named `{prefix}-{Parameter}` and holding its value: the
/// parameter resolves to that name, so the functions' environment names the stack's own
/// secret (on AWS the secret exists before the stack; see `LocalSecret`).
pub async fn provision_template_with(
    config: &SdkConfig,
    template: &Template,
    prefix: &str,
    secrets: &[LocalSecret],
) -> Result<Resources, Error> {
    let prefix = names::slug(prefix, 32);
    let mut parameters = BTreeMap::new();
    secrets::create_secrets(config, template, &prefix, secrets, &mut parameters).await?;
    let parameters = parameters;
    let mut items: BTreeMap<String, Provisioned> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut queues = Vec::new();
    let mut machines = Vec::new();

    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let s3 = s3_client(config);

    for decl in template.resources() {
        let resolver = Resolver::local(template, &parameters, &prefix, &items);
        if !resolver.exists(decl)? {
            tracing::debug!(logical_id = %decl.logical_id, "its condition does not hold: not in the stack");
            continue;
        }
        let made = match decl.kind.as_str() {
            "AWS::DynamoDB::Table" => tables::create_table(&dynamodb, &resolver, decl, &prefix).await?,
            "AWS::S3::Bucket" => buckets::create_bucket(&s3, config, &resolver, decl, &prefix).await?,
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => name_function(decl, &prefix),
            "AWS::SecretsManager::Secret" => secrets::create_stack_secret(config, &resolver, decl, &prefix).await?,
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
    queues::create_queues(config, template, &parameters, &prefix, queues, &mut items).await?;
    #[cfg(not(feature = "sqs"))]
    debug_assert!(queues.is_empty());

    #[cfg(feature = "sfn")]
    state_machines::create_state_machines(config, template, &parameters, &prefix, machines, &mut items).await?;
    #[cfg(not(feature = "sfn"))]
    debug_assert!(machines.is_empty());

    let resolver = Resolver::local(template, &parameters, &prefix, &items);
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
        parameters,
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
