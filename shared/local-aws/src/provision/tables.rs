//! `AWS::DynamoDB::Table`: attributes, keys, secondary indexes, streams and time to live.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde_yaml::Value;

use super::names::table_name;
use super::{Kind, Provisioned, field, service};
use crate::Error;
use crate::emulator::{ACCOUNT_ID, REGION};
use crate::template::{Resolver, ResourceDecl, TemplateError, list, prop};

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
pub(super) async fn create_table(
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
