//! Secrets Manager secrets that the template's parameters name (the stack's keyring, say):
//! on AWS they exist before the stack; locally each stack gets its own, so that a test that
//! changes one changes no other stack's.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use crate::template::Template;
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
