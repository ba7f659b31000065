//! `AWS::Serverless::StateMachine` (feature `sfn`): the definition read and substituted,
//! those another one refers to first.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sfn::types::StateMachineType;
use serde_yaml::Value;

use super::names::state_machine_name;
use super::{Kind, Provisioned, at, missing, service, take_ready};
use crate::Error;
use crate::emulator::ACCOUNT_ID;
use crate::template::{Resolver, ResourceDecl, Template, TemplateError};

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
        let resolver = Resolver::local(template, parameters, prefix, &*items);
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
