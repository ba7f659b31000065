//! Worked examples of the billing rules and property tests of the invariants.

use billing::catalog::Catalog;
use billing::usage::{UsageErrorKind, parse_usage};
use billing::{rate, settle};
use chrono::NaiveDate;
use domain::pii::Keyring;
use domain::{Bill, Channel, Contact, Contract, Customer, CustomerId, Cycle, Family, Krw, LineKind, SendDay, SlotSet};
use proptest::prelude::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn nov() -> Cycle {
    "2026-11".parse().unwrap()
}

fn catalog() -> Catalog {
    Catalog::default_catalog().unwrap()
}

/// A contract running from `start` to `end`.
fn contract_between(start: NaiveDate, end: NaiveDate) -> Option<Contract> {
    Some(Contract { start, end })
}

/// Family group `F1` with `members` members.
fn family_of(members: u8) -> Option<Family> {
    Some(Family {
        group_id: "F1".into(),
        members,
    })
}

fn customer(id: &str, plan: &str) -> Customer {
    let cid = CustomerId::new(id).unwrap();
    Customer {
        contact: Contact::seal(&Keyring::dev(), &cid, "홍길동", "hong@example.com", "010-0000-0000"),
        customer_id: cid,
        shard: 3,
        plan: plan.into(),
        addons: vec![],
        family: None,
        contract: None,
        soldier: None,
        welfare: None,
        premium_contract: None,
        wired: vec![],
        birthday: d(1990, 1, 1),
        joined_on: d(2025, 6, 1), // one full year of tenure: no long-term discount
        cancelled_on: None,
        send_day: SendDay::new(15).unwrap(),
        dnd: SlotSet::EMPTY,
        preferred_channel: Channel::Email,
    }
}

fn bill(c: &Customer, usage_csv: &str) -> Bill {
    let cat = catalog();
    let file = format!("customer_id,product,quantity,amount\n{usage_csv}");
    let p = parse_usage(file.as_bytes(), "t.csv", &cat);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    rate(&cat, nov(), c, &p.records).unwrap().unwrap()
}

fn line(b: &Bill, code: &str) -> Krw {
    b.lines
        .iter()
        .find(|l| &*l.code == code)
        .map_or(Krw::ZERO, |l| l.amount)
}

#[test]
fn plain_full_month_no_usage() {
    let b = bill(&customer("C1", "5G_STANDARD"), "");
    assert_eq!(line(&b, "5G_STANDARD"), Krw(69_000));
    assert_eq!(b.vat, Krw(6_900));
    assert_eq!(b.total, Krw(75_900));
    assert_eq!(b.sum_of_lines(), b.total);
    assert_eq!(b.catalog_version, "2026-v1");
    assert_eq!(b.id(), "2026-11#00003#C1");
}

#[test]
fn prorated_join_mid_month() {
    let mut c = customer("C1", "5G_STANDARD");
    c.joined_on = d(2026, 11, 14); // 17 of 30 days
    let b = bill(&c, "");
    // 69,000 × 17 / 30 = 39,100 exactly.
    assert_eq!(line(&b, "5G_STANDARD"), Krw(39_100));
    assert_eq!(b.lines[0].detail, "일할 17/30일");
    assert_eq!(b.total, Krw(43_010));
}

#[test]
fn prorated_cancellation_and_rounding_line() {
    let mut c = customer("C1", "LTE_SLIM");
    c.cancelled_on = Some(d(2026, 11, 8)); // 7 days of service
    let b = bill(&c, "");
    // 33,000 × 7 / 30 = 7,700; VAT 770; total 8,470.
    assert_eq!(b.total, Krw(8_470));
    let mut c = customer("C2", "LTE_SLIM");
    c.cancelled_on = Some(d(2026, 11, 12)); // 11 days
    let b = bill(&c, "");
    // 33,000 × 11 / 30 = 12,100; VAT 1,210 → 13,310.
    assert_eq!(b.total, Krw(13_310));
    let mut c = customer("C3", "5G_LITE");
    c.cancelled_on = Some(d(2026, 11, 2)); // 1 day: 47,000/30 = 1,566.67 → 1,566
    let b = bill(&c, "");
    assert_eq!(line(&b, "5G_LITE"), Krw(1_566));
    assert_eq!(b.vat, Krw(156));
    assert_eq!(line(&b, "ROUNDING"), Krw(-2)); // 1,722 → 1,720
    assert_eq!(b.total, Krw(1_720));
    assert_eq!(b.sum_of_lines(), b.total);
}

#[test]
fn cancelled_before_cycle_gets_no_bill() {
    let mut c = customer("C1", "LTE_SLIM");
    c.cancelled_on = Some(d(2026, 11, 1));
    assert!(rate(&catalog(), nov(), &c, &[]).unwrap().is_none());
    let mut c = customer("C2", "LTE_SLIM");
    c.joined_on = d(2026, 12, 1);
    assert!(rate(&catalog(), nov(), &c, &[]).unwrap().is_none());
}

#[test]
fn usage_overage_and_pass_through() {
    let c = customer("C1", "LTE_SLIM"); // 2,048 MB, 18,000 s, 300 SMS included
    let b = bill(
        &c,
        "C1,DATA,1000,\nC1,DATA,1100,\nC1,VOICE,18005,\nC1,SMS,10,\nC1,MICROPAY,1,15000\nC1,MICROPAY,2,5000\nC1,DEVICE_INST,1,41250\n",
    );
    assert_eq!(line(&b, "DATA"), Krw(52 * 22)); // 2,100 − 2,048 = 52 MB
    assert_eq!(line(&b, "VOICE"), Krw(18)); // 5 s over → one started 10 s block
    assert_eq!(line(&b, "SMS"), Krw::ZERO); // within allowance: no line
    assert!(b.lines.iter().all(|l| &*l.code != "SMS"));
    assert_eq!(line(&b, "MICROPAY"), Krw(20_000));
    assert_eq!(b.lines.iter().find(|l| &*l.code == "MICROPAY").unwrap().quantity, 3);
    assert_eq!(line(&b, "DEVICE_INST"), Krw(41_250));
    // VAT only on plan + taxable usage.
    let taxable = 33_000 + 52 * 22 + 18;
    assert_eq!(b.taxable_base, Krw(taxable));
    assert_eq!(b.vat, Krw(taxable / 10));
    assert_eq!(b.total, Krw(taxable + taxable / 10 + 20_000 + 41_250).floor_to(10));
}

#[test]
fn unlimited_plan_has_no_data_overage_but_roaming_is_charged() {
    let b = bill(
        &customer("C1", "5G_PREMIUM"),
        "C1,DATA,999999,\nC1,ROAM_DATA,100,\nC1,ROAM_VOICE,61,\n",
    );
    assert_eq!(line(&b, "DATA"), Krw::ZERO);
    assert_eq!(line(&b, "ROAM_DATA"), Krw(4_500));
    assert_eq!(line(&b, "ROAM_VOICE"), Krw(2 * 1_980));
}

#[test]
fn discounts_stack_in_documented_order() {
    let mut c = customer("C1", "5G_STANDARD"); // 69,000, tier standard
    c.contract = contract_between(d(2025, 1, 1), d(2027, 1, 1));
    c.family = family_of(3); // standard, 3 → 15%
    c.joined_on = d(2016, 3, 1); // 10 full years → 10%
    c.birthday = d(1985, 11, 20); // birthday month → 3,000
    let b = bill(&c, "");
    let contract = 69_000 * 25 / 100; // 17,250
    let family = (69_000 - contract) * 15 / 100; // 7,762.5 → 7,762
    let long_term = (69_000 - contract - family) * 10 / 100; // 4,398.8 → 4,398
    let uncapped = contract + family + long_term + 3_000; // 32,410 < cap 34,500
    assert_eq!(line(&b, "DISC_CONTRACT"), Krw(-contract));
    assert_eq!(line(&b, "DISC_FAMILY"), Krw(-family));
    assert_eq!(line(&b, "DISC_LONG_TERM"), Krw(-long_term));
    assert_eq!(line(&b, "DISC_BIRTHDAY"), Krw(-3_000));
    assert_eq!(b.discounts, Krw(-uncapped));
    let order: Vec<&str> = b
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Discount)
        .map(|l| &*l.code)
        .collect();
    assert_eq!(
        order,
        ["DISC_CONTRACT", "DISC_FAMILY", "DISC_LONG_TERM", "DISC_BIRTHDAY"]
    );
}

#[test]
fn plan_discount_cap_trims_the_last_discounts_first() {
    let mut c = customer("C1", "5G_SIGNATURE"); // 130,000 premium
    c.contract = contract_between(d(2025, 1, 1), d(2027, 1, 1));
    c.family = family_of(5); // premium 5 → 30%
    c.joined_on = d(2010, 1, 1); // 10% tier
    c.birthday = d(1985, 11, 2);
    let b = bill(&c, "");
    let contract = 32_500;
    let family = (130_000 - contract) * 30 / 100; // 29,250
    let cap = 65_000;
    let long_term_full = (130_000 - contract - family) * 10 / 100; // 6,825
    // contract + family + long_term = 68,575 > 65,000: long-term trimmed to 3,250, birthday to 0.
    assert_eq!(line(&b, "DISC_CONTRACT"), Krw(-contract));
    assert_eq!(line(&b, "DISC_FAMILY"), Krw(-family));
    assert_eq!(line(&b, "DISC_LONG_TERM"), Krw(-(cap - contract - family)));
    assert!(cap - contract - family < long_term_full);
    assert_eq!(line(&b, "DISC_BIRTHDAY"), Krw::ZERO);
    assert_eq!(b.discounts, Krw(-cap));
}

#[test]
fn contract_ending_inside_the_cycle_is_prorated() {
    let mut c = customer("C1", "5G_STANDARD");
    c.contract = contract_between(d(2024, 11, 11), d(2026, 11, 10)); // covers 10 days
    let b = bill(&c, "");
    assert_eq!(line(&b, "DISC_CONTRACT"), Krw(-(69_000 * 10 * 25 / 3000))); // 5,750
}

#[test]
fn addon_bundle_discount() {
    let mut c = customer("C1", "5G_LITE");
    c.addons = vec!["VCOLORING".into(), "MUSIC".into(), "CLOUD_100G".into()]; // 13,400, 3 → 20%
    let b = bill(&c, "");
    assert_eq!(line(&b, "DISC_ADDON_BUNDLE"), Krw(-2_680));
    let mut c = customer("C2", "5G_LITE");
    c.addons = vec!["VCOLORING".into()];
    assert_eq!(line(&bill(&c, ""), "DISC_ADDON_BUNDLE"), Krw::ZERO);
}

#[test]
fn unknown_codes_name_the_customer() {
    let e = rate(&catalog(), nov(), &customer("C9", "NOPE"), &[])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "customer C9: plan \"NOPE\" is not in catalog 2026-v1");
    let mut c = customer("C9", "5G_LITE");
    c.addons = vec!["GHOST".into()];
    assert!(
        rate(&catalog(), nov(), &c, &[])
            .unwrap_err()
            .to_string()
            .contains("add-on \"GHOST\"")
    );
}

#[test]
fn settle_walks_customers_and_usage_once() {
    let cat = catalog();
    let mut gone = customer("C3", "LTE_SLIM");
    gone.cancelled_on = Some(d(2026, 10, 1));
    let customers = vec![
        customer("C2", "5G_LITE"),
        customer("C1", "LTE_SLIM"),
        gone,
        customer("C4", "NOPE"),
    ];
    let file = "customer_id,product,quantity,amount\n\
                C2,DATA,9000,\n\
                C1,MICROPAY,1,1000\n\
                C0,DATA,1,\n\
                C3,DATA,5,\n\
                C9,DATA,5,\n\
                C1,DATA,-1,\n";
    let p = parse_usage(file.as_bytes(), "usage/2026-11/shard-00003.csv", &cat);
    let s = settle(&cat, nov(), &customers, p, "usage/2026-11/shard-00003.csv");
    let ids: Vec<&str> = s.bills.iter().map(|b| b.customer_id.as_str()).collect();
    assert_eq!(ids, ["C1", "C2"]);
    assert_eq!(s.not_billable, 1);
    assert_eq!(s.usage_lines, 6);
    assert_eq!(s.rating_errors.len(), 1);
    let kinds: Vec<(u32, &UsageErrorKind)> = s.usage_errors.iter().map(|e| (e.line, &e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (4, &UsageErrorKind::UnknownCustomer),
            (6, &UsageErrorKind::UnknownCustomer),
            (7, &UsageErrorKind::Negative { column: "quantity" }),
        ]
    );
    // C3 had no day of service: its usage is suspended, neither billed nor an error.
    assert_eq!(
        s.suspended,
        [billing::Suspended {
            file: "usage/2026-11/shard-00003.csv".into(),
            line: 5,
            customer_id: "C3".into(),
            product: "DATA".into(),
        }]
    );
    assert_eq!(
        String::from_utf8(billing::suspense_csv(&s.suspended)).unwrap(),
        "file,line,customer_id,product\nusage/2026-11/shard-00003.csv,5,C3,DATA\n"
    );
    assert_eq!(s.checksum, s.bills.iter().map(|b| b.total).sum());
    assert_eq!(s.error_count(), 4);
}

#[test]
fn a_customer_listed_twice_is_an_error_and_never_billed() {
    let cat = catalog();
    let mut twin = customer("C1", "LTE_SLIM");
    twin.plan = "5G_PREMIUM".into();
    let customers = vec![customer("C1", "LTE_SLIM"), customer("C2", "LTE_SLIM"), twin];
    let file = "customer_id,product,quantity,amount\nC1,DATA,5000,\nC2,DATA,5000,\n";
    let s = settle(
        &cat,
        nov(),
        &customers,
        parse_usage(file.as_bytes(), "f.csv", &cat),
        "f.csv",
    );
    assert_eq!(
        s.bills.iter().map(|b| b.customer_id.as_str()).collect::<Vec<_>>(),
        ["C2"]
    );
    assert_eq!(s.rating_errors.len(), 1);
    assert_eq!(
        s.rating_errors[0].to_string(),
        "customer C1 appears 2 times in the shard; none of the copies is billed"
    );
    // Its usage line belongs to no billable customer: named too.
    assert_eq!(s.usage_errors.len(), 1);
    assert_eq!(s.usage_errors[0].line, 2);
}

// ---------------------------------------------------------------- properties

fn arb_date(from: i32, to: i32) -> impl Strategy<Value = NaiveDate> {
    (from..=to, 1u32..=12, 1u32..=28).prop_map(|(y, m, dd)| d(y, m, dd))
}

prop_compose! {
    fn arb_customer()(
        plan in prop::sample::select(vec!["LTE_SLIM", "5G_LITE", "5G_STANDARD", "5G_PREMIUM", "5G_SIGNATURE"]),
        addons in prop::sample::subsequence(vec!["VCOLORING", "INSURANCE", "OTT_BASIC", "MUSIC", "CLOUD_100G", "SPAM_GUARD"], 0..=6),
        family in prop::option::of(2u8..=10),
        contract in prop::option::of((arb_date(2023, 2027), 0i64..1500)),
        birthday in arb_date(1950, 2008),
        joined in arb_date(2000, 2027),
        cancel_after in prop::option::of(0i64..800),
    ) -> Customer {
        let mut c = customer("P1", plan);
        c.addons = addons.into_iter().map(String::from).collect();
        c.family = family.map(|members| Family { group_id: "F".into(), members });
        c.contract = contract.map(|(start, len)| Contract { start, end: start + chrono::Duration::days(len) });
        c.birthday = birthday;
        c.joined_on = joined;
        c.cancelled_on = cancel_after.map(|n| joined + chrono::Duration::days(n));
        c
    }
}

fn arb_usage() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            (0i64..200_000).prop_map(|q| format!("P1,DATA,{q},")),
            (0i64..100_000).prop_map(|q| format!("P1,VOICE,{q},")),
            (0i64..2_000).prop_map(|q| format!("P1,SMS,{q},")),
            (0i64..5_000).prop_map(|q| format!("P1,ROAM_DATA,{q},")),
            (1i64..5, 1i64..100_000).prop_map(|(q, a)| format!("P1,MICROPAY,{q},{a}")),
            (1i64..100_000).prop_map(|a| format!("P1,DEVICE_INST,1,{a}")),
        ],
        0..12,
    )
    .prop_map(|v| v.join("\n"))
}

fn arb_cycle() -> impl Strategy<Value = Cycle> {
    (2024i32..=2028, 1u32..=12).prop_map(|(y, m)| Cycle::new(y, m).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn bill_invariants(c in arb_customer(), usage in arb_usage(), cycle in arb_cycle()) {
        let cat = catalog();
        let file = format!("customer_id,product,quantity,amount\n{usage}\n");
        let p = parse_usage(file.as_bytes(), "p.csv", &cat);
        prop_assert!(p.errors.is_empty());
        let first = rate(&cat, cycle, &c, &p.records).unwrap();
        // Determinism: the same inputs give the same bill, whatever the order of usage lines.
        let mut reversed = p.records.clone();
        reversed.reverse();
        prop_assert_eq!(&first, &rate(&cat, cycle, &c, &reversed).unwrap());
        let Some(b) = first else {
            prop_assert_eq!(c.active_days(cycle), 0);
            return Ok(());
        };
        let doc = cat.doc();
        // Totals = sum of lines; never negative.
        prop_assert_eq!(b.sum_of_lines(), b.total);
        prop_assert!(b.total >= Krw::ZERO);
        prop_assert!(b.taxable_base >= Krw::ZERO);
        prop_assert_eq!(b.vat, b.taxable_base.percent_floor(doc.vat_percent));
        prop_assert!(b.rounding <= Krw::ZERO && b.rounding > Krw(-doc.total_rounding_unit));
        prop_assert_eq!(b.total.won() % doc.total_rounding_unit, 0);
        for l in &b.lines {
            match l.kind {
                LineKind::Discount | LineKind::Rounding => prop_assert!(l.amount <= Krw::ZERO),
                _ => prop_assert!(l.amount >= Krw::ZERO),
            }
        }
        // Proration bounded by the full fee; a full month charges the full fee.
        let plan = cat.plan(&c.plan).unwrap();
        let plan_line = b.lines.iter().find(|l| l.kind == LineKind::Plan).unwrap();
        prop_assert!(plan_line.amount <= plan.monthly_fee);
        if c.active_days(cycle) == cycle.days() {
            prop_assert_eq!(plan_line.amount, plan.monthly_fee);
        }
        for a in b.lines.iter().filter(|l| l.kind == LineKind::Addon) {
            prop_assert!(a.amount <= cat.addon(&a.code).unwrap().monthly_fee);
        }
        // Discount caps.
        let d = &doc.discounts;
        let plan_disc: Krw = b.lines.iter()
            .filter(|l| l.kind == LineKind::Discount && *l.code != *d.addon_tiers.code)
            .map(|l| -l.amount).sum();
        prop_assert!(plan_disc <= plan_line.amount.percent_floor(d.plan_discount_cap_percent));
        let addon_total: Krw = b.lines.iter().filter(|l| l.kind == LineKind::Addon).map(|l| l.amount).sum();
        let addon_disc = -b.lines.iter().filter(|l| *l.code == *d.addon_tiers.code).map(|l| l.amount).sum::<Krw>();
        prop_assert!(addon_disc <= addon_total);
        // Header figures agree with the lines.
        let charges: Krw = b.lines.iter().filter(|l| matches!(l.kind, LineKind::Plan | LineKind::Addon | LineKind::Usage)).map(|l| l.amount).sum();
        prop_assert_eq!(b.charges, charges);
        prop_assert_eq!(b.total, b.charges + b.discounts + b.vat + b.rounding);
        // Bills survive a JSON round trip unchanged (what the store keeps).
        let json = serde_json::to_string(&b).unwrap();
        prop_assert_eq!(serde_json::from_str::<Bill>(&json).unwrap(), b);
    }

    #[test]
    fn usage_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let cat = catalog();
        let mut file = b"customer_id,product,quantity,amount\n".to_vec();
        file.extend(bytes);
        let p = parse_usage(&file, "fuzz.csv", &cat);
        prop_assert_eq!(p.records.len() + p.errors.len(), p.lines as usize);
    }

    #[test]
    fn same_bill_in_any_month_for_the_same_relative_inputs(shift_years in 0i32..3) {
        // A customer joined long ago with no dated discounts: identical bills in
        // November of different years (no rule reads the clock).
        let cat = catalog();
        let mut c = customer("P1", "5G_STANDARD");
        c.joined_on = d(2026, 6, 1);
        let a = rate(&cat, nov(), &c, &[]).unwrap().unwrap();
        let cycle = Cycle::new(2026 + shift_years, 11).unwrap();
        c.joined_on = d(2026 + shift_years, 6, 1);
        let b = rate(&cat, cycle, &c, &[]).unwrap().unwrap();
        prop_assert_eq!(a.lines, b.lines);
        prop_assert_eq!(a.total, b.total);
    }
}
