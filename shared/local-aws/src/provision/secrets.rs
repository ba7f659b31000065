//! Secrets Manager secrets that the template's parameters name (the stack's keyring, say):
//! on AWS they exist before the stack; locally each stack gets its own, so that a test that
//! changes one changes no other stack's.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use super::{Kind, Provisioned};
use crate::template::{Resolver, ResourceDecl, Template};
use crate::{Error, ServiceError};

/// A template parameter that names a Secrets Manager secret, and the value the local stack's
/// secret holds. `Debug` does not show the value.
#[derive(Clone)]
pub struct LocalSecret {
    /// The parameter (e.g. `PiiKeysSecretName`).
    pub parameter: String,
    pub value: String,
}

impl std::fmt::Debug for LocalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSecret")
            .field("parameter", &self.parameter)
            .finish_non_exhaustive()
    }
}

/// The name of the secret a stack under `prefix` has for `parameter`.
pub fn secret_name(prefix: &str, parameter: &str) -> String {
    format!("{prefix}-{parameter}")
}

/// Creates (or, provisioning the same prefix again, updates) one secret per entry of
/// `secrets` whose parameter the template declares, and sets the parameter to its name in
/// `parameters`, so that every `!Ref` to the parameter names the stack's own secret.
pub(super) async fn create_secrets(
    config: &SdkConfig,
    template: &Template,
    prefix: &str,
    secrets: &[LocalSecret],
    parameters: &mut BTreeMap<String, String>,
) -> Result<(), Error> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    for secret in secrets {
        if !template.parameters().contains_key(&secret.parameter) {
            continue;
        }
        let name = secret_name(prefix, &secret.parameter);
        let fail = |e: aws_sdk_secretsmanager::Error| Error::Provision {
            logical_id: secret.parameter.clone(),
            source: Box::new(ServiceError::SecretsManager(e)),
        };
        let created = client
            .create_secret()
            .name(&name)
            .secret_string(&secret.value)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceExistsException") => {
                client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&secret.value)
                    .send()
                    .await
                    .map_err(|e| fail(e.into()))?;
            }
            Err(e) => return Err(fail(e.into())),
        }
        parameters.insert(secret.parameter.clone(), name);
    }
    Ok(())
}

/// Creates (or, provisioning the same prefix again, leaves as it is) an
/// `AWS::SecretsManager::Secret` of the template: named by its `Name` (as resolved for this
/// stack) or `{prefix}-{LogicalId}`, holding its `SecretString` or, as CloudFormation does for
/// `GenerateSecretString`, a random value from Secrets Manager's own `GetRandomPassword` with the
/// same length and exclusions.
pub(super) async fn create_stack_secret(
    config: &SdkConfig,
    resolver: &Resolver<'_>,
    decl: &ResourceDecl,
    prefix: &str,
) -> Result<Provisioned, Error> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let fail = |e: aws_sdk_secretsmanager::Error| Error::Provision {
        logical_id: decl.logical_id.clone(),
        source: Box::new(ServiceError::SecretsManager(e)),
    };
    let p = &decl.properties;
    let name = match p.get("Name") {
        Some(v) => resolver.string(v)?,
        None => secret_name(prefix, &decl.logical_id),
    };
    let value = match p.get("SecretString") {
        Some(v) => resolver.string(v)?,
        None => {
            let g = p.get("GenerateSecretString");
            let flag = |key: &str| g.and_then(|g| g.get(key)).and_then(serde_yaml::Value::as_bool);
            let length = g
                .and_then(|g| g.get("PasswordLength"))
                .and_then(serde_yaml::Value::as_i64)
                .unwrap_or(32);
            let mut ask = client.get_random_password().password_length(length);
            if let Some(v) = flag("ExcludePunctuation") {
                ask = ask.exclude_punctuation(v);
            }
            if let Some(v) = flag("IncludeSpace") {
                ask = ask.include_space(v);
            }
            if let Some(v) = flag("ExcludeNumbers") {
                ask = ask.exclude_numbers(v);
            }
            if let Some(v) = g
                .and_then(|g| g.get("ExcludeCharacters"))
                .and_then(serde_yaml::Value::as_str)
            {
                ask = ask.exclude_characters(v);
            }
            let out = ask.send().await.map_err(|e| fail(e.into()))?;
            out.random_password().unwrap_or_default().to_owned()
        }
    };
    let created = client.create_secret().name(&name).secret_string(&value).send().await;
    let arn = match created {
        Ok(out) => out.arn().unwrap_or_default().to_owned(),
        // Provisioned again under the same prefix: the stack's secret keeps its value.
        Err(e) if e.code() == Some("ResourceExistsException") => client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .map_err(|e| fail(e.into()))?
            .arn()
            .unwrap_or_default()
            .to_owned(),
        Err(e) => return Err(fail(e.into())),
    };
    Ok(Provisioned {
        logical_id: decl.logical_id.clone(),
        kind: Kind::Secret,
        name,
        arn,
        url: None,
    })
}
