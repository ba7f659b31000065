//! `env-json`: the `sam local invoke --env-vars` file of a deployed stack,
//! `{"SettleBeginFunction": {"CYCLES_TABLE": "…", …}, …}`: every `AWS::Lambda::Function` of
//! the stack (ListStackResources), its environment as deployed (GetFunctionConfiguration),
//! keyed by its logical id, which is what `sam local invoke <LogicalId>` names.
//!
//! No key is in any function's environment (the keyring is read from Secrets Manager at
//! cold start), so the file holds names of resources only.

use std::collections::BTreeMap;
use std::path::Path;

use aws_config::SdkConfig;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::api::Failure;
use crate::stack::Stack;

/// Pages of ListStackResources read at most (100 resources a page).
const MAX_PAGES: usize = 50;

/// Runs `env-json`, writing to `out` or standard output.
pub(crate) async fn env_json(sdk: &SdkConfig, stack: &Stack, out: Option<&Path>) -> Result<(), Failure> {
    let functions = functions(sdk, &stack.name).await?;
    if functions.is_empty() {
        return Err(Failure::Exit {
            code: 3,
            message: format!("stack {} has no Lambda functions", stack.name),
        });
    }
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let mut file: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (logical_id, physical_id) in &functions {
        let config = lambda
            .get_function_configuration()
            .function_name(physical_id)
            .send()
            .await
            .map_err(|e| {
                Failure::Other(format!(
                    "Lambda GetFunctionConfiguration {logical_id}: {}",
                    DisplayErrorContext(e.into_service_error())
                ))
            })?;
        let vars = config
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        file.insert(logical_id.clone(), vars);
    }
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    match out {
        None => println!("{text}"),
        Some(path) => {
            std::fs::write(path, format!("{text}\n"))
                .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "billingctl: wrote the environment of {} functions of stack {} to {}; run e.g. \
                 sam local invoke SettleBeginFunction -e events/settle-begin/start.json --env-vars {}",
                file.len(),
                stack.name,
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// The stack's functions: logical id → physical id (the function's name).
async fn functions(sdk: &SdkConfig, stack: &str) -> Result<BTreeMap<String, String>, Failure> {
    let cf = aws_sdk_cloudformation::Client::new(sdk);
    let mut found = BTreeMap::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = cf
            .list_stack_resources()
            .stack_name(stack)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                Failure::Other(format!(
                    "CloudFormation ListStackResources {stack}: {}",
                    DisplayErrorContext(e.into_service_error())
                ))
            })?;
        for r in page.stack_resource_summaries() {
            if r.resource_type() == Some("AWS::Lambda::Function")
                && let (Some(logical), Some(physical)) = (r.logical_resource_id(), r.physical_resource_id())
            {
                found.insert(logical.to_owned(), physical.to_owned());
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}
