//! `AWS::S3::Bucket`, and the S3 client the emulator needs.

use aws_config::SdkConfig;

use super::names::bucket_name;
use super::{Kind, Provisioned, service};
use crate::Error;
use crate::emulator::REGION;
use crate::template::{Resolver, ResourceDecl, prop};

/// An S3 client for the emulator (path-style addressing).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

/// Buckets get versioning if the template enables it; encryption, public-access blocks and
/// lifecycle rules do not change behaviour locally and are not applied.
pub(super) async fn create_bucket(
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
