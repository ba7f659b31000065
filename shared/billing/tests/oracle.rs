//! The rating engine against an independent reading of the rules (`billing-oracle`): for
//! thousands of generated customers, with every rule in play, both give the same total (or
//! both no bill).

use billing::catalog::{Catalog, DEFAULT_CATALOG_JSON, SHIPPED_CATALOGS};
use billing::rate;
use billing::usage::parse_usage;
use billing_oracle::UsageLine;
use chrono::NaiveDate;
use domain::{CustomerRecord, Cycle};
use proptest::prelude::*;
use serde_json::{Value, json};

mod common;
use common::{ADDONS, GRADES, PLANS, WIRED};

fn arb_date(from: i32, to: i32) -> impl Strategy<Value = NaiveDate> {
    (from..=to, 1u32..=12, 1u32..=28).prop_map(|(y, m, dd)| NaiveDate::from_ymd_opt(y, m, dd).unwrap())
}

fn plus(d: NaiveDate, days: i64) -> NaiveDate {
    d + chrono::Duration::days(days)
}

prop_compose! {
    /// A customer record as JSON, without contact data.
    fn arb_customer()(
        plan in prop::sample::select(PLANS.to_vec()),
        addons in prop::sample::subsequence(ADDONS.to_vec(), 0..=7),
        family in prop::option::of(2u8..=10),
        contract in prop::option::of((arb_date(2023, 2027), 0i64..1500)),
        birthday in arb_date(1950, 2008),
        joined in arb_date(2000, 2027),
        cancel_after in prop::option::of(0i64..800),
        soldier in prop::option::of((arb_date(2024, 2027), 0i64..600)),
        welfare in prop::option::of((prop::sample::select(GRADES.to_vec()), arb_date(2022, 2027), prop::option::of(0i64..900))),
        premium in prop::option::of((arb_date(2023, 2027), 0i64..1100)),
        wired in prop::sample::subsequence(WIRED.to_vec(), 0..=3),
    ) -> Value {
        json!({
            "soldier": soldier.map(|(s, len)| json!({"start": s, "end": plus(s, len)})),
            "welfare": welfare.map(|(g, s, len)| json!({"grade": g, "start": s, "end": len.map(|n| plus(s, n))})),
            "premium_contract": premium.map(|(s, len)| json!({"start": s, "end": plus(s, len)})),
            "wired": wired.iter().map(|w| json!({"product": w})).collect::<Vec<_>>(),
            "customer_id": "P1",
            "shard": 0,
            "plan": plan,
            "addons": addons,
            "family": family.map(|m| json!({"group_id": "F", "members": m})),
            "contract": contract.map(|(s, len)| json!({"start": s, "end": plus(s, len)})),
            "birthday": birthday,
            "joined_on": joined,
            "cancelled_on": cancel_after.map(|n| plus(joined, n)),
            "send_day": 15,
            "preferred_channel": "email",
            "contact": null,
        })
    }
}

fn arb_usage() -> impl Strategy<Value = Vec<(&'static str, i64, i64)>> {
    prop::collection::vec(
        prop_oneof![
            (0i64..200_000).prop_map(|q| ("DATA", q, 0)),
            (0i64..100_000).prop_map(|q| ("VOICE", q, 0)),
            (0i64..2_000).prop_map(|q| ("SMS", q, 0)),
            (0i64..5_000).prop_map(|q| ("ROAM_DATA", q, 0)),
            (0i64..20_000).prop_map(|q| ("ROAM_VOICE", q, 0)),
            (1i64..5, 1i64..100_000).prop_map(|(q, a)| ("MICROPAY", q, a)),
            (1i64..100_000).prop_map(|a| ("DEVICE_INST", 1, a)),
        ],
        0..12,
    )
}

fn arb_cycle() -> impl Strategy<Value = Cycle> {
    (2024i32..=2028, 1u32..=12).prop_map(|(y, m)| Cycle::new(y, m).unwrap())
}

/// The engine's total for a JSON customer, through the usage file format.
fn engine_total(cat: &Catalog, cycle: Cycle, customer: &Value, usage: &[(&str, i64, i64)]) -> Option<i64> {
    let record: CustomerRecord<()> = serde_json::from_value(customer.clone()).unwrap();
    let mut file = String::from("customer_id,product,quantity,amount\n");
    for (p, q, a) in usage {
        let amount = if *a == 0 { String::new() } else { a.to_string() };
        file.push_str(&format!("P1,{p},{q},{amount}\n"));
    }
    let parsed = parse_usage(file.as_bytes(), "p.csv", cat);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    rate(cat, cycle, &record, &parsed.records)
        .unwrap()
        .map(|b| b.total.won())
}

fn oracle_total(doc: &Value, cycle: Cycle, customer: &Value, usage: &[(&str, i64, i64)]) -> Option<i64> {
    let lines: Vec<UsageLine> = usage
        .iter()
        .map(|(p, q, a)| UsageLine {
            product: (*p).to_owned(),
            quantity: *q,
            amount: *a,
        })
        .collect();
    billing_oracle::total(doc, &cycle.to_string(), customer, &lines).unwrap()
}

/// The shipped versions, and 2026-v1 with a soldier discount larger than the contract's (so
/// that the soldier discount wins the days both cover).
fn catalogs() -> &'static [(Catalog, Value)] {
    static CATALOGS: std::sync::OnceLock<Vec<(Catalog, Value)>> = std::sync::OnceLock::new();
    CATALOGS.get_or_init(build_catalogs)
}

fn build_catalogs() -> Vec<(Catalog, Value)> {
    let mut docs: Vec<Value> = SHIPPED_CATALOGS
        .iter()
        .map(|(_, _, json)| serde_json::from_str(json).unwrap())
        .collect();
    let mut soldier_wins: Value = serde_json::from_str(DEFAULT_CATALOG_JSON).unwrap();
    soldier_wins["version"] = "test-soldier-30".into();
    soldier_wins["discounts"]["soldier"]["percent"] = 30.into();
    docs.push(soldier_wins);
    docs.into_iter()
        .map(|d| (Catalog::from_json(&d.to_string(), "test").unwrap(), d))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6000))]

    #[test]
    fn engine_agrees_with_the_oracle(
        customer in arb_customer(),
        usage in arb_usage(),
        cycle in arb_cycle(),
        which in 0usize..3,
    ) {
        let (cat, doc) = &catalogs()[which];
        let engine = engine_total(cat, cycle, &customer, &usage);
        let oracle = oracle_total(doc, cycle, &customer, &usage);
        prop_assert_eq!(engine, oracle, "customer {} in {}", customer, cycle);
    }
}
