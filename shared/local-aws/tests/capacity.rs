//! The emulator counts DynamoDB capacity by DynamoDB's rules (`shared/local-aws/capacity.py`).
//! Every expected figure is worked out by hand below from "Item sizes and formats" and the
//! capacity rules of the DynamoDB developer guide.

use anyhow::Result;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use local_aws::{Emulator, TableCapacity, Units, unique_prefix};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_owned())
}

async fn shared() -> Result<(&'static Emulator, SdkConfig)> {
    let emulator = Emulator::shared().await?;
    Ok((emulator, emulator.sdk_config().await))
}

/// A table keyed by `pk`, with a global secondary index `Due` on `due` that projects `state`.
async fn table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<String> {
    let table = unique_prefix(name);
    let def = |a: &str| {
        AttributeDefinition::builder()
            .attribute_name(a)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |a: &str| {
        KeySchemaElement::builder()
            .attribute_name(a)
            .key_type(KeyType::Hash)
            .build()
    };
    ddb.create_table()
        .table_name(&table)
        .attribute_definitions(def("pk")?)
        .attribute_definitions(def("due")?)
        .key_schema(key("pk")?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("Due")
                .key_schema(key("due")?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .non_key_attributes("state")
                        .build(),
                )
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await?;
    Ok(table)
}

/// What the emulator counted for `table` since `before`.
async fn since(emulator: &Emulator, table: &str, before: &TableCapacity) -> Result<TableCapacity> {
    let now = emulator.capacity(table).await?;
    let mut earlier = local_aws::Capacity::default();
    earlier.tables.insert(table.to_owned(), before.clone());
    Ok(now.since(&earlier).tables.remove(table).unwrap_or_default())
}

async fn reading(emulator: &Emulator, table: &str) -> Result<TableCapacity> {
    Ok(emulator.capacity(table).await?.tables.remove(table).unwrap_or_default())
}

fn due(t: &TableCapacity) -> Units {
    t.indexes.get("Due").map(|i| i.units).unwrap_or_default()
}

fn units(write: f64, read: f64) -> Units {
    Units {
        write_units: write,
        read_units: read,
    }
}

/// The item of the tests, 1,137 bytes:
/// `pk` "a" 2+1 = 3; `n` 12345: 1 + (3 for five digits + 1) = 5; `body` 4 + 1,100 = 1,104;
/// `l` [1, "ab"]: 1 + 3 + (1+2) + (1+2) = 10; `due` "d1" 3+2 = 5; `state` "READY" 5+5 = 10.
/// Two write units (1,137 > 1,024). Its `Due` entry: pk 3 + due 5 + state 10 = 18 bytes, one unit.
fn item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    ddb.put_item()
        .table_name(table)
        .item("pk", s("a"))
        .item("n", n("12345"))
        .item("body", s(&"x".repeat(1_100)))
        .item("l", AttributeValue::L(vec![n("1"), s("ab")]))
        .item("due", s("d1"))
        .item("state", s("READY"))
}

#[tokio::test]
async fn item_sizes_round_up_to_a_kilobyte_per_write() -> Result<()> {
    let (emulator, config) = shared().await?;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = table(&ddb, "cap-sizes").await?;
    // `pk` "b" (3) + `s` (1 + 1,020) = 1,024 bytes: one unit; one byte more: two.
    let put = |pk: &str, len: usize| {
        ddb.put_item()
            .table_name(&table)
            .item("pk", s(pk))
            .item("s", s(&"y".repeat(len)))
    };
    let before = reading(emulator, &table).await?;
    put("b", 1_020).send().await?;
    assert_eq!(since(emulator, &table, &before).await?.units, units(1.0, 0.0));
    let before = reading(emulator, &table).await?;
    put("c", 1_021).send().await?;
    assert_eq!(since(emulator, &table, &before).await?.units, units(2.0, 0.0));
    // Multi-byte characters count their UTF-8 bytes: "가" is 3 bytes, 341 of them 1,023,
    // + `pk` "d" 3 + `s` 1 = 1,027: two units; a map of one Boolean `m` {"k": true}:
    // 1 + 3 + (1 + 1 + 1) = 7 with `pk` "e" 3 = 10 bytes, one unit.
    let before = reading(emulator, &table).await?;
    ddb.put_item()
        .table_name(&table)
        .item("pk", s("d"))
        .item("s", s(&"가".repeat(341)))
        .send()
        .await?;
    ddb.put_item()
        .table_name(&table)
        .item("pk", s("e"))
        .item(
            "m",
            AttributeValue::M([("k".to_owned(), AttributeValue::Bool(true))].into()),
        )
        .send()
        .await?;
    let t = since(emulator, &table, &before).await?;
    assert_eq!(t.units, units(3.0, 0.0));
    assert_eq!(t.operations.get("PutItem").copied(), Some(units(3.0, 0.0)));
    // Neither item has `due`: neither is in the index.
    assert_eq!(due(&t), Units::default());
    Ok(())
}

#[tokio::test]
async fn a_failed_conditional_write_consumes_the_existing_items_units() -> Result<()> {
    let (emulator, config) = shared().await?;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = table(&ddb, "cap-cond").await?;
    let before = reading(emulator, &table).await?;
    item(&ddb, &table).send().await?;
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(2.0, 0.0), units(1.0, 0.0)));

    // The condition fails on the 1,137-byte item: 2 units, nothing written to the index.
    let before = reading(emulator, &table).await?;
    let refused = item(&ddb, &table)
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert!(refused.is_err(), "the item exists");
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(2.0, 0.0), Units::default()));

    // Where no item exists, a failed condition costs the minimum, 1.
    let before = reading(emulator, &table).await?;
    let refused = ddb
        .update_item()
        .table_name(&table)
        .key("pk", s("nobody"))
        .update_expression("SET #s = :s")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":s", s("SENT"))
        .send()
        .await;
    assert!(refused.is_err(), "no such item");
    assert_eq!(since(emulator, &table, &before).await?.units, units(1.0, 0.0));
    Ok(())
}

#[tokio::test]
async fn index_writes_follow_its_key_and_projected_attributes() -> Result<()> {
    let (emulator, config) = shared().await?;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = table(&ddb, "cap-index").await?;
    item(&ddb, &table).send().await?;
    let update = |expression: &str, value: AttributeValue| {
        ddb.update_item()
            .table_name(&table)
            .key("pk", s("a"))
            .update_expression(expression)
            .expression_attribute_values(":v", value)
    };
    // The index key changes (d1 → d2): a delete and a put in the index, 2; the item stays
    // 1,137 bytes: 2.
    let before = reading(emulator, &table).await?;
    update("SET due = :v", s("d2")).send().await?;
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(2.0, 0.0), units(2.0, 0.0)));

    // An attribute the index does not project: nothing in the index.
    let before = reading(emulator, &table).await?;
    update("SET body = :v", s(&"z".repeat(1_100))).send().await?;
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(2.0, 0.0), Units::default()));

    // A projected attribute: one write of the entry.
    let before = reading(emulator, &table).await?;
    update("SET #s = :v", s("SENT"))
        .expression_attribute_names("#s", "state")
        .send()
        .await?;
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(2.0, 0.0), units(1.0, 0.0)));

    // The key removed: the entry leaves the index, 1.
    let before = reading(emulator, &table).await?;
    ddb.update_item()
        .table_name(&table)
        .key("pk", s("a"))
        .update_expression("REMOVE due")
        .send()
        .await?;
    let t = since(emulator, &table, &before).await?;
    // Before 1,136 bytes (state "SENT"), after 1,131: 2.
    assert_eq!((t.units, due(&t)), (units(2.0, 0.0), units(1.0, 0.0)));
    Ok(())
}

#[tokio::test]
async fn reads_count_4_kb_units_before_the_filter() -> Result<()> {
    let (emulator, config) = shared().await?;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = table(&ddb, "cap-reads").await?;
    item(&ddb, &table).send().await?;
    let before = reading(emulator, &table).await?;
    // 1,137 bytes: one 4 KB unit, half of it eventually consistent; the projection does
    // not make it smaller.
    ddb.get_item()
        .table_name(&table)
        .key("pk", s("a"))
        .projection_expression("pk")
        .send()
        .await?;
    assert_eq!(since(emulator, &table, &before).await?.units, units(0.0, 0.5));
    let before = reading(emulator, &table).await?;
    ddb.get_item()
        .table_name(&table)
        .key("pk", s("a"))
        .consistent_read(true)
        .send()
        .await?;
    assert_eq!(since(emulator, &table, &before).await?.units, units(0.0, 1.0));

    // A Query whose filter keeps nothing still reads the item: 1 unit, strongly consistent.
    let before = reading(emulator, &table).await?;
    let out = ddb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .filter_expression("#s = :none")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":pk", s("a"))
        .expression_attribute_values(":none", s("NOT-A-STATE"))
        .consistent_read(true)
        .send()
        .await?;
    assert_eq!(out.count(), 0);
    assert_eq!(out.scanned_count(), 1);
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(0.0, 1.0), Units::default()));

    // Four items of 1,137 bytes by a Scan: 4,548 bytes, two 4 KB units, eventually
    // consistent 1.0; a Query of the index reads its entries (18 bytes): 0.5, the index's.
    for pk in ["b", "c", "d"] {
        item(&ddb, &table).item("pk", s(pk)).send().await?;
    }
    let before = reading(emulator, &table).await?;
    ddb.scan().table_name(&table).send().await?;
    ddb.query()
        .table_name(&table)
        .index_name("Due")
        .key_condition_expression("due = :d")
        .expression_attribute_values(":d", s("d1"))
        .send()
        .await?;
    let t = since(emulator, &table, &before).await?;
    assert_eq!((t.units, due(&t)), (units(0.0, 1.0), units(0.0, 0.5)));
    Ok(())
}
