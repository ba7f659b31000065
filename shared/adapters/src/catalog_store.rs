//! The catalog table: one item per published version (`version` S), holding
//! the document and its digest. A version, once published, never changes.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use billing::Catalog;

use crate::dynamo::{Item, attr_s, get_item, put_new};
use crate::{PutOutcome, StoreError};

#[derive(Clone, Debug)]
pub struct CatalogStore {
    client: Client,
    table: String,
}

impl CatalogStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        CatalogStore {
            client,
            table: table.into(),
        }
    }

    /// Publishes a catalog version. Publishing the same document again is
    /// harmless (`AlreadyExists`); a different document under a version that
    /// already exists is a [`StoreError::Conflict`] — bills pin versions, so a
    /// version must never change under them.
    pub async fn publish(&self, catalog: &Catalog) -> Result<PutOutcome, StoreError> {
        let item = Item::from([
            ("version".into(), AttributeValue::S(catalog.version().to_owned())),
            ("digest".into(), AttributeValue::S(catalog.digest().to_owned())),
            ("document".into(), AttributeValue::S(catalog.to_json())),
        ]);
        if put_new(&self.client, &self.table, item, "version").await? == PutOutcome::Created {
            return Ok(PutOutcome::Created);
        }
        match self.get_raw(catalog.version()).await? {
            Some((digest, _)) if digest == catalog.digest() => Ok(PutOutcome::AlreadyExists),
            _ => Err(StoreError::Conflict {
                resource: self.table.clone(),
                message: format!(
                    "catalog version {} is already published with different content; publish a new version instead",
                    catalog.version()
                ),
            }),
        }
    }

    async fn get_raw(&self, version: &str) -> Result<Option<(String, String)>, StoreError> {
        let got = get_item(
            &self.client,
            &self.table,
            [("version", AttributeValue::S(version.to_owned()))],
            true,
        )
        .await?;
        Ok(got.map(|item| {
            (
                attr_s(&item, "digest").unwrap_or_default().to_owned(),
                attr_s(&item, "document").unwrap_or_default().to_owned(),
            )
        }))
    }

    /// Loads and validates a published version; `Ok(None)` if it does not
    /// exist. A stored document that fails validation, or whose digest does
    /// not match, is a decode error naming the version.
    pub async fn get(&self, version: &str) -> Result<Option<Catalog>, StoreError> {
        let Some((digest, doc)) = self.get_raw(version).await? else {
            return Ok(None);
        };
        let source = format!("{} item {version}", self.table);
        let catalog = Catalog::from_json(&doc, &source).map_err(|e| StoreError::Decode {
            resource: self.table.clone(),
            what: format!("catalog version {version}"),
            message: e.to_string(),
        })?;
        if catalog.digest() != digest {
            return Err(StoreError::Decode {
                resource: self.table.clone(),
                what: format!("catalog version {version}"),
                message: "stored digest does not match the document".into(),
            });
        }
        Ok(Some(catalog))
    }
}
