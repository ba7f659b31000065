//! Property tests of the soldier, welfare, premium-contract, plan-priced add-on and wired
//! bundle rules: totals never negative, each discount within its cap, the plan-discount cap
//! held, and as-of pricing — a rule with dates follows the cycle's dates and gives the same
//! bill whatever the date today.

use billing::catalog::{BundlePart, Catalog, SHIPPED_CATALOGS, WiredKind};
use billing::rate;
use chrono::{Datelike, NaiveDate};
use domain::{Bill, CustomerRecord, Cycle, Krw, LineKind};
use proptest::prelude::*;
use serde_json::{Value, json};

type Record = CustomerRecord<()>;

mod common;
use common::{ADDONS, GRADES, PLANS, WIRED};
/// The discounts under the plan-discount cap.
const CAPPED: [&str; 6] = [
    "DISC_CONTRACT",
    "DISC_SOLDIER",
    "DISC_FAMILY",
    "DISC_LONG_TERM",
    "DISC_PREMIUM_CONTRACT",
    "DISC_BIRTHDAY",
];

fn catalogs() -> &'static [Catalog] {
    static C: std::sync::OnceLock<Vec<Catalog>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        SHIPPED_CATALOGS
            .iter()
            .map(|(_, file, json)| Catalog::from_json(json, file).unwrap())
            .collect()
    })
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn plus(x: NaiveDate, days: i64) -> NaiveDate {
    x + chrono::Duration::days(days)
}

fn arb_date(from: i32, to: i32) -> impl Strategy<Value = NaiveDate> {
    (from..=to, 1u32..=12, 1u32..=28).prop_map(|(y, m, dd)| d(y, m, dd))
}

/// Dated attributes as (start, length in days).
type Span = Option<(NaiveDate, i64)>;

#[derive(Clone, Debug)]
struct Input {
    plan: &'static str,
    addons: Vec<&'static str>,
    family: Option<u8>,
    contract: Span,
    soldier: Span,
    welfare: Option<(&'static str, NaiveDate, Option<i64>)>,
    premium: Span,
    wired: Vec<&'static str>,
    birthday: NaiveDate,
    joined: NaiveDate,
    cancel_after: Option<i64>,
}

prop_compose! {
    fn arb_input()(
        plan in prop::sample::select(PLANS.to_vec()),
        addons in prop::sample::subsequence(ADDONS.to_vec(), 0..=7),
        family in prop::option::of(2u8..=10),
        contract in prop::option::of((arb_date(2024, 2027), 0i64..1000)),
        soldier in prop::option::of((arb_date(2024, 2027), 0i64..600)),
        welfare in prop::option::of((prop::sample::select(GRADES.to_vec()), arb_date(2023, 2027), prop::option::of(0i64..700))),
        premium in prop::option::of((arb_date(2024, 2027), 0i64..900)),
        wired in prop::sample::subsequence(WIRED.to_vec(), 0..=4),
        birthday in arb_date(1950, 2008),
        joined in arb_date(2005, 2027),
        cancel_after in prop::option::of(0i64..700),
    ) -> Input {
        Input { plan, addons, family, contract, soldier, welfare, premium, wired, birthday, joined, cancel_after }
    }
}

impl Input {
    /// The record, with every date moved by `years` years.
    fn record(&self, years: i32) -> Record {
        let y = |x: NaiveDate| d(x.year() + years, x.month(), x.day());
        let span = |s: Span| s.map(|(start, len)| json!({"start": y(start), "end": y(plus(start, len))}));
        let v: Value = json!({
            "customer_id": "R1",
            "shard": 0,
            "plan": self.plan,
            "addons": self.addons,
            "family": self.family.map(|m| json!({"group_id": "F", "members": m})),
            "contract": span(self.contract),
            "soldier": span(self.soldier),
            "welfare": self.welfare.map(|(g, s, len)| json!({"grade": g, "start": y(s), "end": len.map(|n| y(plus(s, n)))})),
            "premium_contract": span(self.premium),
            "wired": self.wired.iter().map(|w| json!({"product": w})).collect::<Vec<_>>(),
            "birthday": self.birthday,
            "joined_on": y(self.joined),
            "cancelled_on": self.cancel_after.map(|n| y(plus(self.joined, n))),
            "send_day": 15,
            "preferred_channel": "email",
            "contact": null,
        });
        serde_json::from_value(v).unwrap()
    }
}

fn arb_cycle() -> impl Strategy<Value = Cycle> {
    (2024i32..=2028, 1u32..=12).prop_map(|(y, m)| Cycle::new(y, m).unwrap())
}

fn line(b: &Bill, code: &str) -> Krw {
    b.lines.iter().filter(|l| &*l.code == code).map(|l| l.amount).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn each_new_discount_within_its_cap(input in arb_input(), cycle in arb_cycle(), which in 0usize..2) {
        let cat = &catalogs()[which];
        let doc = cat.doc();
        let dsc = &doc.discounts;
        let c = input.record(0);
        let Some(b) = rate(cat, cycle, &c, &[]).unwrap() else {
            prop_assert_eq!(c.active_days(cycle), 0);
            return Ok(());
        };
        let days = i64::from(cycle.days());
        let active = i64::from(c.active_days(cycle));
        let plan = cat.plan(&c.plan).unwrap();

        // Never negative; total = sum of lines; every discount line is a reduction.
        prop_assert!(b.total >= Krw::ZERO && b.taxable_base >= Krw::ZERO);
        prop_assert_eq!(b.sum_of_lines(), b.total);
        for l in b.lines.iter().filter(|l| l.kind == LineKind::Discount) {
            prop_assert!(l.amount < Krw::ZERO, "{} {}", l.code, l.amount);
        }

        // The plan-discount cap over the six capped discounts.
        let plan_fee = line(&b, &c.plan);
        let capped: Krw = CAPPED.iter().map(|code| -line(&b, code)).sum();
        prop_assert!(capped <= plan_fee.percent_floor(dsc.plan_discount_cap_percent));

        // Soldier: at most its percentage for the days of service it covers, and never on a
        // day the (larger) contract covers.
        let soldier = -line(&b, "DISC_SOLDIER");
        let rule = dsc.soldier.as_ref().unwrap();
        let own_days = i64::from(c.soldier_days(cycle) - c.soldier_and_contract_days(cycle));
        prop_assert!(soldier <= plan.monthly_fee.mul_div_floor(own_days * i64::from(rule.percent), days * 100));
        let contract = -line(&b, "DISC_CONTRACT");
        prop_assert!(contract <= plan.monthly_fee.mul_div_floor(i64::from(c.contract_days(cycle)) * i64::from(dsc.contract.percent), days * 100));

        // Premium contract: only on the listed tiers, at most the amount for the days covered.
        let premium = -line(&b, "DISC_PREMIUM_CONTRACT");
        let p_rule = dsc.premium_contract.as_ref().unwrap();
        if p_rule.tiers.contains(&plan.tier) {
            prop_assert!(premium <= p_rule.amount.mul_div_floor(i64::from(c.premium_contract_days(cycle)), days));
        } else {
            prop_assert_eq!(premium, Krw::ZERO);
        }

        // Welfare: within the grade's cap for the eligible days and within what the capped
        // discounts left of the plan fee.
        let welfare = -line(&b, "DISC_WELFARE");
        match &c.welfare {
            Some(w) if c.welfare_days(cycle) > 0 => {
                let g = dsc.welfare.as_ref().unwrap().grades.iter().find(|g| g.grade == w.grade).unwrap();
                let eligible = i64::from(c.welfare_days(cycle));
                prop_assert!(welfare <= g.monthly_cap.mul_div_floor(eligible, days));
                prop_assert!(welfare <= plan_fee - capped);
                prop_assert!(welfare <= (plan_fee - capped).mul_div_floor(i64::from(g.percent) * eligible, 100 * active));
            }
            _ => prop_assert_eq!(welfare, Krw::ZERO),
        }

        // Plan-priced add-ons: the line is the price for this plan, prorated.
        for l in b.lines.iter().filter(|l| l.kind == LineKind::Addon) {
            if let Some(a) = cat.addon(&l.code) {
                prop_assert_eq!(l.unit_price, a.fee_on(plan));
                prop_assert!(l.unit_price <= a.monthly_fee);
                prop_assert_eq!(l.amount, a.fee_on(plan).mul_div_floor(active, days));
            }
        }
        if c.plan == "5G_SIGNATURE" && c.addons.iter().any(|a| a == "OTT_BASIC") {
            prop_assert_eq!(line(&b, "OTT_BASIC"), Krw::ZERO);
        }

        // Wired bundle: only with a wired line, within the best row's share of the wired lines.
        let wired: Krw = c.wired.iter().map(|w| line(&b, &w.product)).sum();
        let bundle = -line(&b, "DISC_WIRED_BUNDLE");
        let kinds: Vec<BundlePart> = c.wired.iter().map(|w| {
            match doc.wired_products.iter().find(|p| p.code == w.product).unwrap().kind {
                WiredKind::Internet => BundlePart::Internet,
                WiredKind::Iptv => BundlePart::Iptv,
            }
        }).chain([BundlePart::Mobile]).collect();
        let best = dsc.wired_bundle.as_ref().unwrap().rows.iter()
            .filter(|r| r.parts.iter().all(|p| kinds.contains(p)))
            .map(|r| r.percent).max().unwrap_or(0);
        prop_assert!(bundle <= wired);
        prop_assert_eq!(bundle, wired.percent_floor(best));
    }

    /// The bill depends on the cycle and the record's dates, never on the date today: the
    /// same customer with every date moved by a multiple of four years (so that every
    /// February keeps its length), billed for the cycle moved the same way, gets the same lines.
    #[test]
    fn as_of_pricing_moves_with_the_cycle(input in arb_input(), year in 2024i32..=2027, month in 1u32..=12, shift in prop::sample::select(vec![4, 8, 12, 40])) {
        let cat = &catalogs()[0];
        let a = rate(cat, Cycle::new(year, month).unwrap(), &input.record(0), &[]).unwrap();
        let b = rate(cat, Cycle::new(year + shift, month).unwrap(), &input.record(shift), &[]).unwrap();
        prop_assert_eq!(a.as_ref().map(|b| (&b.lines, b.total)), b.as_ref().map(|b| (&b.lines, b.total)));
    }

    /// A dated rule follows the cycle's days: military service ending on day `k` gives `k`
    /// days of discount in that cycle and none in the next; a welfare eligibility starting on
    /// day `k` gives the rest of the month.
    #[test]
    fn dated_rules_follow_the_cycle_days(k in 1u32..=30, plan in prop::sample::select(PLANS.to_vec())) {
        let cat = &catalogs()[0];
        let nov = Cycle::new(2026, 11).unwrap();
        let base = Input {
            plan, addons: vec![], family: None, contract: None, soldier: None, welfare: None, premium: None,
            wired: vec![], birthday: d(1990, 1, 1), joined: d(2025, 6, 1), cancel_after: None,
        };
        let end = d(2026, 11, k);
        let soldier = Input { soldier: Some((d(2025, 6, 1), (end - d(2025, 6, 1)).num_days())), ..base.clone() };
        let b = rate(cat, nov, &soldier.record(0), &[]).unwrap().unwrap();
        let fee = cat.plan(plan).unwrap().monthly_fee;
        prop_assert_eq!(-line(&b, "DISC_SOLDIER"), fee.mul_div_floor(i64::from(k) * 20, 30 * 100));
        let next = rate(cat, nov.next(), &soldier.record(0), &[]).unwrap().unwrap();
        prop_assert_eq!(line(&next, "DISC_SOLDIER"), Krw::ZERO);

        let welfare = Input { welfare: Some(("basic_pension", d(2026, 11, k), None)), ..base };
        let b = rate(cat, nov, &welfare.record(0), &[]).unwrap().unwrap();
        let eligible = 30 - i64::from(k) + 1;
        let want = fee.mul_div_floor(50 * eligible, 100 * 30).min(Krw(11_000).mul_div_floor(eligible, 30));
        prop_assert_eq!(-line(&b, "DISC_WELFARE"), want);
    }
}

#[test]
fn an_unknown_welfare_grade_or_wired_product_names_the_customer_not_the_value() {
    let cat = &catalogs()[0];
    let nov = Cycle::new(2026, 11).unwrap();
    let base = Input {
        plan: "5G_STANDARD",
        addons: vec![],
        family: None,
        contract: None,
        soldier: None,
        welfare: Some(("secret_grade", d(2026, 1, 1), None)),
        premium: None,
        wired: vec![],
        birthday: d(1990, 1, 1),
        joined: d(2025, 6, 1),
        cancel_after: None,
    };
    let e = rate(cat, nov, &base.record(0), &[]).unwrap_err().to_string();
    assert_eq!(e, "customer R1: the welfare grade is not one of catalog 2026-v1");
    let wired = Input {
        welfare: None,
        wired: vec!["FIBER_10G"],
        ..base
    };
    let e = rate(cat, nov, &wired.record(0), &[]).unwrap_err().to_string();
    assert_eq!(e, "customer R1: wired product \"FIBER_10G\" is not in catalog 2026-v1");
}
