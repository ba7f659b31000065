//! The hand-written sample bills are what the rating engine produces for the
//! same customers with the 2026-v1 catalog.

use billing::catalog::Catalog;
use billing::{parse_usage, rate};
use chrono::NaiveDate;
use domain::pii::Keyring;
use domain::{Bill, Channel, Contact, Contract, Customer, CustomerId, Family, SendDay, SlotSet};
use invoice::samples;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn customer(id: &str, plan: &str, addons: &[&str]) -> Customer {
    let cid = CustomerId::new(id).unwrap();
    Customer {
        contact: Contact::seal(&Keyring::dev(), &cid, "홍길동", "hong@example.com", "010-0000-0000"),
        customer_id: cid,
        shard: 42,
        plan: plan.into(),
        addons: addons.iter().map(|a| (*a).to_owned()).collect(),
        family: None,
        contract: None,
        birthday: d(1990, 1, 1),
        joined_on: d(2025, 6, 1),
        cancelled_on: None,
        soldier: None,
        welfare: None,
        premium_contract: None,
        wired: Vec::new(),
        send_day: SendDay::new(15).unwrap(),
        dnd: SlotSet::EMPTY,
        preferred_channel: Channel::Email,
    }
}

fn rated(c: &Customer, usage: &str) -> Bill {
    let catalog = Catalog::default_catalog().unwrap();
    let file = format!("customer_id,product,quantity,amount\n{usage}");
    let parsed = parse_usage(file.as_bytes(), "sample.csv", &catalog);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    rate(&catalog, samples::cycle().unwrap(), c, &parsed.records)
        .unwrap()
        .unwrap()
}

#[test]
fn samples_match_the_rating_engine() {
    let mut family = customer("C0001042", "5G_PREMIUM", &["OTT_BASIC", "MUSIC"]);
    family.family = Some(Family {
        group_id: "F77".into(),
        members: 4,
    });
    family.joined_on = d(2019, 3, 2);
    let family_usage = "C0001042,DATA,48213,\nC0001042,ROAM_DATA,350,\nC0001042,MICROPAY,2,12800\n";

    let mut contract = customer("C0002318", "5G_STANDARD", &["INSURANCE"]);
    contract.contract = Some(Contract {
        start: d(2025, 2, 1),
        end: d(2027, 1, 31),
    });
    contract.joined_on = d(2020, 5, 20);
    let contract_usage = "C0002318,DATA,28000,\nC0002318,VOICE,4200,\nC0002318,DEVICE_INST,1,41250\n";

    let mut birthday = customer("C0003577", "LTE_SLIM", &["VCOLORING"]);
    birthday.birthday = d(1988, 11, 23);
    let birthday_usage = "C0003577,DATA,2500,\nC0003577,VOICE,19237,\nC0003577,SMS,342,\n";

    let mut prorated = customer("C0004120", "5G_LITE", &["CLOUD_100G", "SPAM_GUARD"]);
    prorated.joined_on = d(2026, 11, 14);

    let zero = customer("C0005009", "LTE_SLIM", &[]);

    let expected = [
        rated(&family, family_usage),
        rated(&contract, contract_usage),
        rated(&birthday, birthday_usage),
        rated(&prorated, "C0004120,DATA,3100,\n"),
        rated(&zero, ""),
    ];
    let all = samples::all().unwrap();
    assert_eq!(
        all.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
        samples::SAMPLE_KEYS
    );
    for (s, want) in all.iter().zip(&expected) {
        assert_eq!(&s.bill, want, "sample {}", s.key);
        assert_eq!(s.bill.sum_of_lines(), s.bill.total);
    }
    assert!(samples::by_key("prorated").unwrap().is_some());
    assert!(samples::by_key("nope").unwrap().is_none());
}
