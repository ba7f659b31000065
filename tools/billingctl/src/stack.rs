//! A deployed stack as billingctl finds it: the AWS configuration of the default chain
//! ([`sdk_config`]) and the stack's CloudFormation outputs ([`Stack::find`]), which name the
//! bucket, the state machines, the tables and the admin API.

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::types::StackStatus;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::api::Failure;

/// The region used when neither `--region`, `AWS_REGION` nor the profile names one.
pub(crate) const DEFAULT_REGION: &str = "ap-northeast-2";

/// The default AWS chain (environment, profile, SSO, role; `AWS_ENDPOINT_URL` for an
/// emulator), in `region` when given.
pub(crate) async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(adapters::https_client());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_some() {
        return sdk;
    }
    sdk.into_builder().region(Region::from_static(DEFAULT_REGION)).build()
}

/// The region of `sdk` (always set by [`sdk_config`]).
pub(crate) fn region_of(sdk: &SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// A stack's name, region, status and outputs.
pub(crate) struct Stack {
    pub(crate) name: String,
    pub(crate) region: String,
    pub(crate) status: String,
    outputs: BTreeMap<String, String>,
}

impl Stack {
    /// `DescribeStacks` of `name`: a stack that does not exist is exit code 3, with the
    /// region it was looked for in.
    pub(crate) async fn find(sdk: &SdkConfig, name: &str) -> Result<Stack, Failure> {
        let region = region_of(sdk);
        let cf = aws_sdk_cloudformation::Client::new(sdk);
        let answer = match cf.describe_stacks().stack_name(name).send().await {
            Ok(a) => a,
            Err(e) => {
                let e = e.into_service_error();
                // CloudFormation answers a ValidationError "Stack with id X does not exist".
                if e.meta().code() == Some("ValidationError")
                    && e.meta().message().is_some_and(|m| m.contains("does not exist"))
                {
                    return Err(Failure::Exit {
                        code: 3,
                        message: format!(
                            "no stack named {name} in {region}: check --stack (BILLING_STACK) and the region \
                             (--region, AWS_REGION or the profile's)"
                        ),
                    });
                }
                return Err(Failure::Other(format!(
                    "CloudFormation DescribeStacks {name}: {}",
                    DisplayErrorContext(&e)
                )));
            }
        };
        let Some(stack) = answer.stacks().first() else {
            return Err(Failure::Exit {
                code: 3,
                message: format!("no stack named {name} in {region}"),
            });
        };
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        Ok(Stack {
            name: name.to_owned(),
            region,
            status: stack.stack_status().map(StackStatus::as_str).unwrap_or("?").to_owned(),
            outputs,
        })
    }

    /// The value of output `key`; a stack without it was deployed from a template that
    /// predates what this command needs.
    pub(crate) fn output(&self, key: &str) -> Result<&str, Failure> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| Failure::Exit {
            code: 1,
            message: format!(
                "stack {} ({}) has no output {key}: it was deployed from an older template.yaml; \
                 deploy this version (sam deploy) and try again",
                self.name, self.status
            ),
        })
    }
}

/// An S3 client for `sdk`: path-style addressing when an endpoint is set (an emulator), as
/// emulators serve buckets under one host.
pub(crate) fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty());
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build(),
    )
}
