//! One customer from its own stream `(seed, customer index)`.

use billing::catalog::{Tier, WiredKind};
use chrono::{Datelike, Months, NaiveDate, TimeDelta};
use domain::customer::{PremiumContract, Soldier, Welfare, WiredLine};
use domain::{Channel, Contact, Contract, Customer, CustomerId, Cycle, Family, SendDay, Slot, SlotSet};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::drop_zone::ClearContact;
use crate::error::DatagenError;
use crate::generator::Generator;
use crate::names::{EMAIL_DOMAINS, FAMILY_NAMES, GIVEN_SYLLABLES};
use crate::parts::{Member, PHONE_SPACE};
use crate::rng::{Stream, chance, stream_rng};

/// Odd and not a multiple of 5, hence coprime with `PHONE_SPACE` (2¹⁰·5⁷).
const PHONE_STEP: u64 = 23_456_789;

/// Start probability of a group at a position (per 10,000). With sizes 2–5
/// averaging 3 this puts about 30 % of customers in groups (a little less
/// at block ends, where groups are cut short).
const GROUP_START_PER_10K: u32 = 1_250;

impl Generator {
    /// The family layout of the block of customers `start..end`.
    pub(crate) fn family_block(&self, start: u32, end: u32) -> Vec<Option<Member>> {
        let len = end.saturating_sub(start) as usize;
        let mut out = Vec::with_capacity(len);
        let mut r = stream_rng(&self.key, Stream::FamilyBlock, u64::from(start));
        while out.len() < len {
            let remaining = len - out.len();
            if remaining >= 2 && chance(&mut r, GROUP_START_PER_10K) {
                let size = (self.family_size.sample(&mut r) + 2).min(remaining);
                let member = Member {
                    first: start + out.len() as u32,
                    size: size as u8,
                    surname: self.surnames.sample(&mut r) as u16,
                };
                out.extend(std::iter::repeat_n(Some(member), size));
            } else {
                out.push(None);
            }
        }
        out
    }
}

/// DND sets of the "night owl" kind: all inside the default quiet window.
const NIGHT_SETS: &[(&[u32], u32)] = &[
    (&[0, 1, 2, 3], 35),
    (&[11], 25),
    (&[0, 1, 2, 3, 11], 15),
    (&[10, 11], 10),
    (&[0, 1], 10),
    (&[0, 1, 2, 3, 10, 11], 5),
];

fn slots(ix: &[u32]) -> SlotSet {
    ix.iter().filter_map(|&i| Slot::new(i).ok()).collect()
}

fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    d.checked_add_signed(TimeDelta::days(n)).unwrap_or(d)
}

/// A period of `months` months around `cycle`: 10 % end inside it, 10 % start inside it, the
/// rest cover it.
fn dated(r: &mut ChaCha8Rng, cycle: Cycle, months: u32) -> (NaiveDate, NaiveDate) {
    let first = cycle.first_day();
    let days = i64::from(cycle.days());
    let months = Months::new(months);
    match r.random_range(0..100u32) {
        0..10 => {
            let end = add_days(first, r.random_range(0..days));
            (end.checked_sub_months(months).map_or(end, |x| add_days(x, 1)), end)
        }
        10..20 => {
            let start = add_days(first, r.random_range(0..days));
            (
                start,
                start.checked_add_months(months).map_or(start, |x| add_days(x, -1)),
            )
        }
        _ => {
            let end = add_days(cycle.last_day(), r.random_range(1..=500));
            let start = end.checked_sub_months(months).map_or(end, |x| add_days(x, 1));
            (start.min(first), end)
        }
    }
}

impl Generator {
    /// The customer with index `index` and the index of its plan in the
    /// catalog.
    pub(crate) fn make_customer(&self, index: u32, member: Option<Member>) -> Result<(Customer, usize), DatagenError> {
        self.make_customer_clear(index, member)
            .map(|(c, _, plan_ix)| (c, plan_ix))
    }

    /// The customer with index `index`, the clear contact data its sealed
    /// contact holds, and the index of its plan in the catalog.
    pub(crate) fn make_customer_clear(
        &self,
        index: u32,
        member: Option<Member>,
    ) -> Result<(Customer, ClearContact, usize), DatagenError> {
        let r = &mut stream_rng(&self.key, Stream::Customer, u64::from(index));
        let cycle = self.cfg.cycle;
        let first = cycle.first_day();
        let days = i64::from(cycle.days());
        let id = CustomerId::new(format!("C{:07}", index + 1))?;
        let shard = index / self.cfg.shard_size;

        // Plan and add-ons.
        let plan_ix = self.plan_weights.sample(r);
        let plan = self
            .catalog
            .doc()
            .plans
            .get(plan_ix)
            .map(|p| p.code.clone())
            .unwrap_or_default();
        let catalog_addons = &self.catalog.doc().addons;
        let n_addons = self.addon_count.sample(r);
        let mut pool: Vec<usize> = (0..catalog_addons.len()).collect();
        let mut picked = Vec::with_capacity(n_addons);
        for _ in 0..n_addons.min(pool.len()) {
            picked.push(pool.swap_remove(r.random_range(0..pool.len())));
        }
        picked.sort_unstable();
        let addons = picked.into_iter().map(|i| catalog_addons[i].code.clone()).collect();

        // Joined and cancelled (all relative to the cycle).
        let fifteen_years = 15 * 365 + 4;
        let (joined_on, cancelled_on) = match r.random_range(0..10_000u32) {
            // 1.5 % joined inside the cycle.
            0..150 => (add_days(first, r.random_range(0..days)), None),
            // 1 % cancelled inside the cycle (at least one day of service).
            150..250 => {
                let cancelled = add_days(first, r.random_range(1..days));
                (add_days(first, -r.random_range(1..=fifteen_years)), Some(cancelled))
            }
            // 0.3 % cancelled in the 90 days before the cycle: no service in it.
            250..280 => {
                let cancelled = add_days(first, -r.random_range(0..90));
                (
                    add_days(cancelled, -r.random_range(30..=fifteen_years)),
                    Some(cancelled),
                )
            }
            _ => (add_days(first, -r.random_range(1..=fifteen_years)), None),
        };

        // Selective contract: 40 %.
        let contract = chance(r, 4_000).then(|| {
            let months = Months::new(if r.random_bool(0.5) { 12 } else { 24 });
            let end = match r.random_range(0..100u32) {
                0..10 => add_days(first, r.random_range(0..days)),
                10..20 => add_days(first, -r.random_range(1..=365)),
                _ => add_days(cycle.last_day(), r.random_range(1..=730)),
            };
            let start = end.checked_sub_months(months).map_or(end, |d| add_days(d, 1));
            if start >= joined_on {
                Contract { start, end }
            } else {
                // A contract cannot start before the subscription does.
                let end = joined_on
                    .checked_add_months(months)
                    .map_or(joined_on, |d| add_days(d, -1));
                Contract { start: joined_on, end }
            }
        });

        // Birthday: adults aged 18–85 who were at least 14 when they joined.
        let min_age = 18.max(cycle.year() - joined_on.year() + 14);
        let max_age = 85.max(min_age);
        let age = (r.random_range(min_age..=max_age) + r.random_range(min_age..=max_age)) / 2;
        let birth_year = cycle.year() - age;
        let year_days = if NaiveDate::from_ymd_opt(birth_year, 2, 29).is_some() {
            366
        } else {
            365
        };
        let birthday = NaiveDate::from_yo_opt(birth_year, r.random_range(1..=year_days))
            .unwrap_or_else(|| NaiveDate::from_yo_opt(birth_year, 1).unwrap_or(first));

        // Send day: peaks on the 15th and the 25th.
        let send_day = match r.random_range(0..100u32) {
            0..25 => 15,
            25..45 => 25,
            _ => r.random_range(1..=31),
        };
        let send_day = SendDay::new(send_day).map_err(|e| DatagenError::Config(e.to_string()))?;

        let dnd = self.draw_dnd(r);
        let preferred_channel = if chance(r, 8_500) { Channel::Email } else { Channel::Sms };

        // Contact data, sealed.
        let own_surname = self.surnames.sample(r);
        let surname = match member {
            Some(m) if chance(r, 7_500) => usize::from(m.surname),
            _ => own_surname,
        };
        let (family_name, family_roman, _) = FAMILY_NAMES[surname.min(FAMILY_NAMES.len() - 1)];
        let syllables = if chance(r, 400) { 1 } else { 2 };
        let mut given = String::new();
        let mut given_roman = String::new();
        let mut last = usize::MAX;
        for _ in 0..syllables {
            let mut s = r.random_range(0..GIVEN_SYLLABLES.len());
            if s == last {
                s = (s + 1) % GIVEN_SYLLABLES.len();
            }
            last = s;
            given.push_str(GIVEN_SYLLABLES[s].0);
            given_roman.push_str(GIVEN_SYLLABLES[s].1);
        }
        let name = format!("{family_name}{given}");
        let n = index + 1;
        let local = match r.random_range(0..4u32) {
            0 => format!("user{n}"),
            1 => format!("{given_roman}.{family_roman}{n}"),
            2 => format!("{family_roman}_{given_roman}{n}"),
            _ => format!("{}{given_roman}{n}", &family_roman[..1]),
        };
        let domain = EMAIL_DOMAINS[self.domains.sample(r)].0;
        let email = format!("{local}@{domain}");
        let v = (u64::from(index) * PHONE_STEP + self.phone_offset) % PHONE_SPACE;
        let phone = format!("010-{:04}-{:04}", 2000 + v / 10_000, v % 10_000);
        let contact = Contact::seal(&self.keys, &id, &name, &email, &phone);
        let clear = ClearContact { name, email, phone };

        let mut customer = Customer {
            customer_id: id,
            shard,
            plan,
            addons,
            family: member.map(|m| Family {
                group_id: format!("F{:07}", m.first + 1),
                members: m.size,
            }),
            contract,
            soldier: None,
            welfare: None,
            premium_contract: None,
            wired: vec![],
            birthday,
            joined_on,
            cancelled_on,
            send_day,
            dnd,
            preferred_channel,
            contact,
        };
        self.draw_benefits(index, &mut customer);
        // Re-draw the DND slots until the record passes validation; an empty
        // set is the last resort, and if even that fails the settings are
        // at fault (a quiet window covering the whole day).
        let quiet = self.cfg.quiet_window;
        let mut tries = 0;
        while let Err(e) = customer.validate(quiet) {
            tries += 1;
            customer.dnd = match tries {
                1..=8 => self.draw_dnd(r),
                9 => SlotSet::EMPTY,
                _ => return Err(e.into()),
            };
        }
        Ok((customer, clear, plan_ix))
    }

    /// The attributes of the later discount rules, from the customer's own benefits stream,
    /// for what the catalog offers: military service (2 %), welfare eligibility (5 %), a
    /// premium contract (30 % of premium-tier plans), an extra OTT add-on (25 % of premium-tier
    /// plans without one) and wired lines (20 %: internet, with IPTV for half of those).
    fn draw_benefits(&self, index: u32, c: &mut Customer) {
        let r = &mut stream_rng(&self.key, Stream::Benefits, u64::from(index));
        let cycle = self.cfg.cycle;
        let doc = self.catalog.doc();
        let d = &doc.discounts;
        let tier = self.catalog.plan(&c.plan).map(|p| p.tier);
        // A dated attribute that covers the cycle mostly, sometimes ending inside it or
        // starting inside it; never starting before the subscription.
        let period = |r: &mut ChaCha8Rng, months: u32| -> (NaiveDate, NaiveDate) {
            let (start, end) = dated(r, cycle, months);
            if start >= c.joined_on {
                (start, end)
            } else {
                let end = c
                    .joined_on
                    .checked_add_months(Months::new(months))
                    .map_or(c.joined_on, |x| add_days(x, -1));
                (c.joined_on, end)
            }
        };

        // Soldiers: 18 months of service (병사 복무기간).
        let soldier = chance(r, 200).then(|| period(r, 18));
        if d.soldier.is_some() {
            c.soldier = soldier.map(|(start, end)| Soldier { start, end });
        }
        // Welfare: most open-ended, some ending around the cycle.
        let welfare = chance(r, 500).then(|| {
            let grade = r.random_range(0..100u32);
            let start = add_days(cycle.first_day(), -r.random_range(0..3_650));
            let end = chance(r, 1_000).then(|| add_days(cycle.first_day(), r.random_range(0..120)));
            (grade, start.max(c.joined_on), end)
        });
        if let (Some(rule), Some((grade, start, end))) = (&d.welfare, welfare)
            && !rule.grades.is_empty()
        {
            // Weights by grade position: the shipped order is disabled, national merit, basic
            // livelihood, near-poverty, basic pension.
            const SHARES: [u32; 5] = [35, 10, 20, 15, 20];
            let mut x = grade;
            let mut pick = rule.grades.len() - 1;
            for (i, w) in SHARES.iter().enumerate().take(rule.grades.len()) {
                if x < *w {
                    pick = i;
                    break;
                }
                x -= w;
            }
            c.welfare = Some(Welfare {
                grade: rule.grades[pick].grade.clone(),
                start,
                end: end.map(|e| e.max(start)),
            });
        }
        // Premium contracts among the tiers the rule covers (24 months).
        let premium = chance(r, 3_000);
        if let Some(rule) = &d.premium_contract
            && tier.is_some_and(|t| rule.tiers.contains(&t))
            && premium
        {
            let (start, end) = period(r, 24);
            c.premium_contract = Some(PremiumContract { start, end });
        }
        // Content add-ons (those priced by plan, such as OTT) on premium plans, where they are
        // included or cheaper.
        let extra_ott = chance(r, 2_500);
        let by_plan = |code: &str| doc.addons.iter().any(|a| a.code == code && !a.plan_prices.is_empty());
        if tier == Some(Tier::Premium)
            && extra_ott
            && c.addons.len() < 4
            && !c.addons.iter().any(|a| by_plan(a))
            && let Some(ott) = doc.addons.iter().find(|a| !a.plan_prices.is_empty())
        {
            c.addons.push(ott.code.clone());
            c.addons.sort_unstable();
        }
        // Wired lines.
        let wired = chance(r, 2_000);
        let with_iptv = chance(r, 5_000);
        let (pick_internet, pick_iptv) = (r.random_range(0..100u32), r.random_range(0..100u32));
        if wired {
            let of_kind = |kind: WiredKind| -> Vec<&str> {
                doc.wired_products
                    .iter()
                    .filter(|w| w.kind == kind)
                    .map(|w| w.code.as_str())
                    .collect()
            };
            // The first product of a kind is the common one (60 % of internet, 70 % of IPTV).
            let choose = |codes: &[&str], x: u32, common: u32| -> Option<String> {
                let i = if x < common || codes.len() < 2 { 0 } else { 1 };
                codes.get(i).map(|s| (*s).to_owned())
            };
            let mut lines = Vec::new();
            if let Some(p) = choose(&of_kind(WiredKind::Internet), pick_internet, 60) {
                lines.push(WiredLine { product: p });
            }
            if with_iptv && let Some(p) = choose(&of_kind(WiredKind::Iptv), pick_iptv, 70) {
                lines.push(WiredLine { product: p });
            }
            c.wired = lines;
        }
    }

    fn draw_dnd(&self, r: &mut ChaCha8Rng) -> SlotSet {
        match r.random_range(0..100u32) {
            0..70 => SlotSet::EMPTY,
            70..90 => {
                let total: u32 = NIGHT_SETS.iter().map(|x| x.1).sum();
                let mut x = r.random_range(0..total);
                let mut set = SlotSet::EMPTY;
                for (ix, w) in NIGHT_SETS {
                    if x < *w {
                        set = slots(ix);
                        break;
                    }
                    x -= w;
                }
                set
            }
            _ => {
                // Several daytime slots (08:00–20:00), sometimes nights too.
                let mut set = SlotSet::EMPTY;
                while set.len() < 2 {
                    for i in 4..=9 {
                        if chance(r, 4_000) {
                            set = set.union(slots(&[i]));
                        }
                    }
                }
                if chance(r, 3_000) {
                    set = set.union(slots(&[0, 1, 2, 3]));
                }
                set
            }
        }
    }
}
