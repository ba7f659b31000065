//! The shares promised in the generator's documentation, on 5,000
//! customers, with loose bounds (the streams are fixed, so these are
//! deterministic; the bounds say what is intended, not what happened).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use billing::{parse_usage, settle};
use chrono::Datelike;
use common::{config, generator, nov};
use datagen::ShardData;
use domain::pii::Keyring;
use domain::{Channel, Customer, LineKind, QuietWindow};

const N: u32 = 5_000;

struct Set {
    shards: Vec<ShardData>,
}

impl Set {
    fn new() -> Set {
        let g = generator(config(N, 1_000));
        Set {
            shards: (0..g.shard_count()).map(|s| g.shard(s).unwrap()).collect(),
        }
    }

    fn customers(&self) -> impl Iterator<Item = &Customer> {
        self.shards.iter().flat_map(|s| s.customers.iter())
    }

    fn share(&self, f: impl Fn(&Customer) -> bool) -> f64 {
        self.customers().filter(|c| f(c)).count() as f64 / f64::from(N)
    }
}

fn within(what: &str, x: f64, lo: f64, hi: f64) {
    assert!((lo..=hi).contains(&x), "{what}: {x:.4} is outside {lo}..={hi}");
}

#[test]
fn customers_are_valid_and_spread_as_documented() {
    let set = Set::new();
    let cycle = nov();
    let quiet = QuietWindow::default_korea();
    let keys = Keyring::dev();
    assert_eq!(set.customers().count(), N as usize);
    for c in set.customers() {
        c.validate(quiet).unwrap();
        c.check_contact(&keys).unwrap();
    }

    // Plans: the two mid plans dominate; every plan occurs.
    let mut plans: HashMap<&str, f64> = HashMap::new();
    for c in set.customers() {
        *plans.entry(c.plan.as_str()).or_default() += 1.0 / f64::from(N);
    }
    assert_eq!(plans.len(), 5, "{plans:?}");
    within(
        "5G_LITE + 5G_STANDARD",
        plans["5G_LITE"] + plans["5G_STANDARD"],
        0.55,
        0.70,
    );
    within("5G_SIGNATURE", plans["5G_SIGNATURE"], 0.04, 0.12);

    // Add-ons: 0-4, mostly 0-1.
    within("no add-on", set.share(|c| c.addons.is_empty()), 0.44, 0.56);
    within("0-1 add-ons", set.share(|c| c.addons.len() <= 1), 0.72, 0.84);
    assert!(set.customers().all(|c| c.addons.len() <= 4));
    assert!(set.customers().any(|c| c.addons.len() == 4));

    // Family groups: ~30 %, 2-5 consecutive members sharing id and count.
    within("in a family group", set.share(|c| c.family.is_some()), 0.24, 0.36);
    let mut groups: BTreeMap<&str, Vec<(u32, u32, u8)>> = BTreeMap::new();
    for c in set.customers() {
        if let Some(f) = &c.family {
            let n: u32 = c.customer_id.as_str()[1..].parse().unwrap();
            groups
                .entry(f.group_id.as_str())
                .or_default()
                .push((n, c.shard, f.members));
        }
    }
    for (id, m) in &groups {
        assert!((2..=5).contains(&m[0].2), "{id}: {m:?}");
        assert_eq!(m.len(), usize::from(m[0].2), "{id}: member count matches the members");
        assert!(
            m.windows(2)
                .all(|w| w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 && w[1].2 == w[0].2),
            "{id}: {m:?}"
        );
        assert_eq!(*id, format!("F{:07}", m[0].0), "group id names the first member");
    }
    let sizes: HashSet<u8> = groups.values().map(|m| m[0].2).collect();
    assert_eq!(sizes.len(), 4, "all sizes 2-5 occur: {sizes:?}");

    // Contracts: ~40 %, some ending inside the cycle.
    within("selective contract", set.share(|c| c.contract.is_some()), 0.35, 0.45);
    let ending_inside = set
        .customers()
        .filter(|c| c.contract.as_ref().is_some_and(|k| cycle.contains(k.end)))
        .count();
    assert!(ending_inside > 50, "{ending_inside} contracts end inside the cycle");

    // Birthdays over the whole year.
    for m in 1..=12 {
        within(
            &format!("birthday in month {m}"),
            set.share(|c| c.birthday.month() == m),
            0.05,
            0.12,
        );
    }

    // Joined over ~15 years, ~1.5 % inside the cycle; cancellations.
    let years: HashSet<i32> = set.customers().map(|c| c.joined_on.year()).collect();
    assert!(years.len() >= 15, "{years:?}");
    assert!(
        set.customers()
            .all(|c| c.joined_on.year() >= 2026 - 16 && c.joined_on <= cycle.last_day())
    );
    within(
        "joined in the cycle",
        set.share(|c| cycle.contains(c.joined_on)),
        0.008,
        0.025,
    );
    within(
        "cancelled in the cycle",
        set.share(|c| c.cancelled_on.is_some_and(|d| cycle.contains(d))),
        0.005,
        0.018,
    );
    let before = set.share(|c| c.cancelled_on.is_some_and(|d| d <= cycle.first_day()));
    within("cancelled before the cycle", before, 0.0006, 0.008);
    assert!(
        set.customers()
            .all(|c| c.is_billable(cycle) == c.cancelled_on.is_none_or(|d| d > cycle.first_day()))
    );

    // Send days: peaks on the 15th and 25th, every day including 29-31.
    within("send day 15", set.share(|c| c.send_day.get() == 15), 0.22, 0.33);
    within("send day 25", set.share(|c| c.send_day.get() == 25), 0.17, 0.28);
    let days: HashSet<u8> = set.customers().map(|c| c.send_day.get()).collect();
    assert_eq!(days.len(), 31);

    // DND: mostly none, some nights, some several daytime slots.
    within("no DND", set.share(|c| c.dnd.is_empty()), 0.65, 0.75);
    let daytime = |c: &Customer| c.dnd.iter().filter(|s| (4..=9).contains(&s.index())).count();
    within(
        "night-only DND",
        set.share(|c| !c.dnd.is_empty() && daytime(c) == 0),
        0.16,
        0.24,
    );
    within("daytime DND", set.share(|c| daytime(c) >= 2), 0.07, 0.13);
    assert!(set.customers().all(|c| daytime(c) != 1 && daytime(c) < 6));

    // The later discount rules' attributes.
    within("soldier", set.share(|c| c.soldier.is_some()), 0.01, 0.03);
    within("welfare", set.share(|c| c.welfare.is_some()), 0.035, 0.065);
    let grades: HashSet<&str> = set
        .customers()
        .filter_map(|c| c.welfare.as_ref())
        .map(|w| w.grade.as_str())
        .collect();
    assert_eq!(grades.len(), 5, "every welfare grade occurs: {grades:?}");
    let premium_tier = |c: &Customer| matches!(c.plan.as_str(), "5G_PREMIUM" | "5G_SIGNATURE");
    let premiums = set.customers().filter(|c| premium_tier(c)).count() as f64;
    let with_premium_contract = set.customers().filter(|c| c.premium_contract.is_some()).count() as f64;
    assert!(set.customers().all(|c| c.premium_contract.is_none() || premium_tier(c)));
    within(
        "premium contract among premium plans",
        with_premium_contract / premiums,
        0.22,
        0.38,
    );
    let ott = |c: &Customer| c.addons.iter().any(|a| a.starts_with("OTT"));
    let premium_ott = set.customers().filter(|c| premium_tier(c) && ott(c)).count() as f64 / premiums;
    let other_ott = set.customers().filter(|c| !premium_tier(c) && ott(c)).count() as f64 / (f64::from(N) - premiums);
    assert!(
        premium_ott > other_ott + 0.1,
        "OTT on premium plans {premium_ott:.3}, others {other_ott:.3}"
    );
    within("wired lines", set.share(|c| !c.wired.is_empty()), 0.17, 0.23);
    let wired = set.customers().filter(|c| !c.wired.is_empty()).count() as f64;
    let iptv = set
        .customers()
        .filter(|c| c.wired.iter().any(|w| w.product.starts_with("IPTV")))
        .count() as f64;
    within("IPTV among wired", iptv / wired, 0.42, 0.58);
    assert!(
        set.customers()
            .all(|c| c.wired.is_empty() || c.wired[0].product.starts_with("INTERNET"))
    );
    assert!(
        set.customers()
            .filter_map(|c| c.soldier.as_ref())
            .any(|s| cycle.contains(s.end)),
        "some military service ends inside the cycle"
    );

    within(
        "e-mail preferred",
        set.share(|c| c.preferred_channel == Channel::Email),
        0.82,
        0.88,
    );
}

#[test]
fn contact_data_looks_korean_and_uses_reserved_domains() {
    let set = Set::new();
    let keys = Keyring::dev();
    let mut phones = HashSet::new();
    let mut emails = HashSet::new();
    let mut domains = HashSet::new();
    for c in set.customers() {
        let open = c.contact.open(&keys, &c.customer_id).unwrap();
        let name = open.name.expose();
        let n = name.chars().count();
        assert!((2..=4).contains(&n), "{} has a {n}-syllable name", c.customer_id);
        assert!(
            name.chars().all(|ch| ('\u{AC00}'..='\u{D7A3}').contains(&ch)),
            "{}",
            c.customer_id
        );
        let email = open.email.expose();
        let (local, domain) = email.split_once('@').unwrap();
        assert!(["example.com", "example.net", "example.org"].contains(&domain));
        domains.insert(domain.to_owned());
        let number = c.customer_id.as_str()[1..].trim_start_matches('0');
        assert!(local.ends_with(number) && local.is_ascii(), "{}", c.customer_id);
        let phone = open.phone.expose();
        let b = phone.as_bytes();
        let shape = b.len() == 13
            && phone.starts_with("010-")
            && b[8] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, ch)| i == 3 || i == 8 || ch.is_ascii_digit());
        assert!(
            shape && phone[4..8] >= *"2000",
            "{} has a malformed phone number",
            c.customer_id
        );
        assert!(phones.insert(phone.clone()), "phone numbers are unique");
        assert!(emails.insert(email.clone()), "e-mail addresses are unique");
    }
    assert_eq!(domains.len(), 3);
}

#[test]
fn usage_is_realistic_and_settles_without_errors() {
    let set = Set::new();
    let cycle = nov();
    let catalog = billing::Catalog::default_catalog().unwrap();
    // (product code, quantity, amount) per customer.
    type Lines = [(String, i64, i64)];
    let mut per_customer: HashMap<String, Vec<(String, i64, i64)>> = HashMap::new();
    let mut lines = 0usize;
    let mut bills = Vec::new();
    for s in &set.shards {
        let file = format!("usage/{cycle}/shard-{:05}.csv", s.shard);
        let parsed = parse_usage(&s.usage_csv, &file, &catalog);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors.first());
        assert_eq!(parsed.records.len(), s.usage_lines as usize);
        lines += parsed.records.len();
        for r in &parsed.records {
            let code = catalog.product(r.product).unwrap().code.clone();
            per_customer
                .entry(r.customer_id.to_owned())
                .or_default()
                .push((code, r.quantity, r.amount.won()));
        }
        let parsed = parse_usage(&s.usage_csv, &file, &catalog);
        let settled = settle(&catalog, cycle, &s.customers, parsed, &file);
        assert_eq!(
            settled.error_count(),
            0,
            "{:?} {:?}",
            settled.usage_errors.first(),
            settled.rating_errors.first()
        );
        assert_eq!(settled.bills.len(), s.billable as usize);
        bills.extend(settled.bills);
    }
    let billable = set.customers().filter(|c| c.is_billable(cycle)).count();
    assert_eq!(bills.len(), billable);
    within("usage lines per customer", lines as f64 / f64::from(N), 4.4, 5.6);
    let share = |f: &dyn Fn(&Lines) -> bool| per_customer.values().filter(|v| f(v)).count() as f64 / billable as f64;
    within(
        "zero usage",
        1.0 - per_customer.len() as f64 / billable as f64,
        0.03,
        0.08,
    );
    let has = |code: &'static str| move |v: &Lines| v.iter().any(|l| l.0 == code);
    within("DATA", share(&has("DATA")), 0.82, 0.92);
    within("VOICE", share(&has("VOICE")), 0.75, 0.86);
    within("SMS", share(&has("SMS")), 0.28, 0.38);
    within(
        "roaming",
        share(&|v| v.iter().any(|l| l.0.starts_with("ROAM_"))),
        0.015,
        0.05,
    );
    within("MICROPAY", share(&has("MICROPAY")), 0.11, 0.18);
    within("DEVICE_INST", share(&has("DEVICE_INST")), 0.30, 0.39);
    for v in per_customer.values() {
        let micro: Vec<_> = v.iter().filter(|l| l.0 == "MICROPAY").collect();
        assert!(micro.len() <= 3);
        assert!(micro.iter().all(|l| (1_000..=50_000).contains(&l.2)));
        let inst: Vec<_> = v.iter().filter(|l| l.0 == "DEVICE_INST").collect();
        assert!(inst.len() <= 1 && inst.iter().all(|l| (20_000..=60_000).contains(&l.2)));
    }
    // Some customers exceed their data allowance, so overage lines exist.
    let overage = bills
        .iter()
        .filter(|b| b.lines.iter().any(|l| l.kind == LineKind::Usage && &*l.code == "DATA"))
        .count();
    within("bills with data overage", overage as f64 / billable as f64, 0.03, 0.12);
    assert!(bills.iter().all(|b| b.total.won() >= 0 && b.sum_of_lines() == b.total));
    assert!(bills.iter().any(|b| b.lines.iter().any(|l| &*l.code == "DISC_FAMILY")));
    assert!(
        bills
            .iter()
            .any(|b| b.lines.iter().any(|l| &*l.code == "DISC_CONTRACT"))
    );
    assert!(
        bills
            .iter()
            .any(|b| b.lines.iter().any(|l| &*l.code == "DISC_BIRTHDAY"))
    );
}
