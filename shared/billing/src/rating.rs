//! The rating engine.
//!
//! # Order of computation (documented precedence)
//!
//! 1. **Fees, prorated daily.** The plan fee, each add-on fee and each wired line (internet,
//!    IPTV) are charged for the days of service in the cycle: `fee × active_days ÷
//!    cycle_days`. An add-on's fee may depend on the plan (`plan_prices`: a row for the plan,
//!    else a row for its tier, else the list price).
//! 2. **Usage.** Metered products are summed per product; the plan allowance
//!    (prorated the same way) is deducted; what remains is charged per started
//!    block. Pass-through products are charged as recorded.
//! 3. **Plan-fee discounts, in this order, each on what the previous ones
//!    left of the prorated plan fee:**
//!    1. selective contract: `percent` of the plan fee for the days the
//!       contract covers (`fee × contract_days × percent ÷ (cycle_days × 100)`);
//!    2. soldier: the same for the days of military service; a day both cover takes only the
//!       larger percentage (the contract's on a tie);
//!    3. family bundle: the table row with the customer's plan tier and the
//!       largest `min_members` not above the group's member count;
//!    4. long-term customer: the tier with the largest `min_years` not above
//!       the full years of tenure on the cycle's last day;
//!    5. premium contract: a fixed monthly amount on the listed tiers, prorated by the days
//!       the contract covers;
//!    6. birthday month: a fixed amount when the birthday falls in the
//!       cycle's month (not prorated).
//!
//!    Together they never exceed `plan_discount_cap_percent` of the prorated
//!    plan fee; when they would, the later discounts in this order are reduced
//!    first.
//! 4. **Welfare discount**, outside the cap: the grade's `percent` of what the plan-fee
//!    discounts left, for the eligible share of the days of service, never more than the
//!    grade's `monthly_cap × eligible_days ÷ cycle_days`.
//! 5. **Add-on bundle discount:** `percent` of the add-on charges by the
//!    number of add-ons, never more than those charges.
//! 6. **Wired bundle discount:** of the rows whose parts (mobile, internet, IPTV) are all on
//!    the bill, the largest `percent`, of the wired lines' charges.
//! 7. **VAT:** `vat_percent` of the taxable base (taxable charges minus all
//!    discounts). Micropayments and device instalments are outside VAT.
//! 8. **Total:** taxable base + VAT + non-taxable charges, rounded down to a
//!    multiple of `total_rounding_unit` won (10원 미만 절사); the difference is a
//!    rounding line so that the total always equals the sum of the lines.
//!
//! # Rounding rule
//! Every computed amount (proration, percentage, allowance, VAT) is the exact
//! rational value rounded **down** to the won, computed in 128-bit integers.
//! Usage is charged per *started* block (rounded up), as metered services are.
//!
//! Discounts never exceed what they apply to, so no line base and no total is
//! ever negative.

use std::collections::HashMap;

use domain::{Bill, BillLine, CustomerRecord, Cycle, Krw, LineKind};

use crate::catalog::{Allowance, BundlePart, Catalog, LineText, Plan, Pricing, WiredKind};
use crate::usage::{UsageError, UsageErrorKind, UsageParse, UsageRecord};

/// A customer that cannot be billed with this catalog. Names the customer and
/// the code, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    #[error("customer {customer_id}: plan {plan:?} is not in catalog {catalog_version}")]
    UnknownPlan {
        customer_id: String,
        plan: String,
        catalog_version: String,
    },
    #[error("customer {customer_id}: add-on {addon:?} is not in catalog {catalog_version}")]
    UnknownAddon {
        customer_id: String,
        addon: String,
        catalog_version: String,
    },
    #[error("customer {customer_id}: wired product {product:?} is not in catalog {catalog_version}")]
    UnknownWired {
        customer_id: String,
        product: String,
        catalog_version: String,
    },
    /// The grade is sensitive personal data: the message does not name it.
    #[error("customer {customer_id}: the welfare grade is not one of catalog {catalog_version}")]
    UnknownWelfareGrade {
        customer_id: String,
        catalog_version: String,
    },
    #[error("customer {customer_id} appears {count} times in the shard; none of the copies is billed")]
    DuplicateCustomer { customer_id: String, count: usize },
    #[error("customer {customer_id}: usage for product {product} overflows")]
    Overflow { customer_id: String, product: String },
}

/// Rates one customer for one cycle. Returns `Ok(None)` when the customer
/// had no day of service in the cycle (no bill). `usage` holds only this
/// customer's records.
/// The customer's contact data (`C`) plays no part: a sealed record, one in clear and a
/// rating snapshot without contact data rate the same.
pub fn rate<C>(
    catalog: &Catalog,
    cycle: Cycle,
    customer: &CustomerRecord<C>,
    usage: &[UsageRecord<'_>],
) -> Result<Option<Bill>, RatingError> {
    let active = i64::from(customer.active_days(cycle));
    if active == 0 {
        return Ok(None);
    }
    let days = i64::from(cycle.days());
    let cid = customer.customer_id.as_str();
    let plan_ix = catalog
        .plan_index(&customer.plan)
        .ok_or_else(|| RatingError::UnknownPlan {
            customer_id: cid.to_owned(),
            plan: customer.plan.clone(),
            catalog_version: catalog.version().to_owned(),
        })?;
    let plan = &catalog.doc().plans[plan_ix];
    let texts = catalog.texts();
    let mut lines = Vec::with_capacity(4 + customer.addons.len() + usage.len().min(8));
    let prorate_detail = |what: &str| {
        if active < days {
            format!("{what} {active}/{days}일")
        } else {
            String::new()
        }
    };

    // 1. Fees.
    let plan_fee = plan.monthly_fee.mul_div_floor(active, days);
    lines.push(fee_line(
        LineKind::Plan,
        &texts.plans[plan_ix],
        active,
        plan.monthly_fee,
        plan_fee,
        prorate_detail("일할"),
    ));
    let mut addon_total = Krw::ZERO;
    for code in &customer.addons {
        let addon_ix = catalog.addon_index(code).ok_or_else(|| RatingError::UnknownAddon {
            customer_id: cid.to_owned(),
            addon: code.clone(),
            catalog_version: catalog.version().to_owned(),
        })?;
        let addon = &catalog.doc().addons[addon_ix];
        let text = &texts.addons[addon_ix];
        let fee = addon.fee_on(plan);
        let amount = fee.mul_div_floor(active, days);
        addon_total += amount;
        let mut detail = prorate_detail("일할");
        if fee != addon.monthly_fee {
            let priced = if fee == Krw::ZERO {
                format!("{} 요금제 포함", plan.name)
            } else {
                format!("{} 요금제 월 {}원", plan.name, fee.won())
            };
            detail = if detail.is_empty() {
                priced
            } else {
                format!("{priced}, {detail}")
            };
        }
        lines.push(fee_line(LineKind::Addon, text, active, fee, amount, detail));
    }
    // Wired lines (internet, IPTV): add-on lines of their own codes, prorated the same way.
    let mut wired_total = Krw::ZERO;
    let mut wired_parts: Vec<BundlePart> = vec![BundlePart::Mobile];
    for w in &customer.wired {
        let ix = catalog
            .wired_index(&w.product)
            .ok_or_else(|| RatingError::UnknownWired {
                customer_id: cid.to_owned(),
                product: w.product.clone(),
                catalog_version: catalog.version().to_owned(),
            })?;
        let product = &catalog.doc().wired_products[ix];
        let text = &texts.wired[ix];
        let amount = product.monthly_fee.mul_div_floor(active, days);
        wired_total += amount;
        wired_parts.push(match product.kind {
            WiredKind::Internet => BundlePart::Internet,
            WiredKind::Iptv => BundlePart::Iptv,
        });
        lines.push(fee_line(
            LineKind::Addon,
            text,
            active,
            product.monthly_fee,
            amount,
            prorate_detail("일할"),
        ));
    }

    // 2. Usage, per product in catalog order.
    let mut per_product: Vec<(i64, Krw, i64)> = vec![(0, Krw::ZERO, 0); catalog.products().len()];
    for r in usage {
        let Some(slot) = per_product.get_mut(usize::from(r.product)) else {
            continue;
        };
        let overflow = || RatingError::Overflow {
            customer_id: cid.to_owned(),
            product: catalog.product(r.product).map_or_else(String::new, |p| p.code.clone()),
        };
        slot.0 = slot.0.checked_add(r.quantity).ok_or_else(overflow)?;
        slot.1 = Krw(slot.1.won().checked_add(r.amount.won()).ok_or_else(overflow)?);
        slot.2 += 1;
    }
    for ((product, text), &(quantity, amount, records)) in
        catalog.products().iter().zip(&texts.products).zip(&per_product)
    {
        if records == 0 {
            continue;
        }
        match &product.pricing {
            Pricing::Metered {
                allowance,
                block,
                price_per_block,
            } => {
                let included = allowance
                    .and_then(|a| allowance_of(plan, a))
                    .map(|a| Krw(a).mul_div_floor(active, days).won());
                let unlimited = allowance.is_some() && included.is_none();
                let over = if unlimited {
                    0
                } else {
                    (quantity - included.unwrap_or(0)).max(0)
                };
                let blocks = (over + block - 1) / block;
                let charge = Krw(blocks.saturating_mul(price_per_block.won()));
                if charge == Krw::ZERO {
                    continue;
                }
                let detail = match included {
                    Some(inc) => format!("사용 {quantity}{u}, 기본제공 {inc}{u} 초과 {over}{u}", u = product.unit),
                    None => format!("사용 {quantity}{}", product.unit),
                };
                lines.push(BillLine {
                    kind: LineKind::Usage,
                    code: text.code.clone(),
                    label: text.label.clone(),
                    quantity: over,
                    unit: text.unit.clone(),
                    unit_price: *price_per_block,
                    amount: charge,
                    taxable: product.taxable,
                    detail,
                });
            }
            Pricing::PassThrough => lines.push(BillLine {
                kind: LineKind::Usage,
                code: text.code.clone(),
                label: text.label.clone(),
                quantity,
                unit: text.unit.clone(),
                unit_price: Krw::ZERO,
                amount,
                taxable: product.taxable,
                detail: String::new(),
            }),
        }
    }
    let charges: Krw = lines.iter().map(|l| l.amount).sum();

    // 3. Plan-fee discounts, in precedence order.
    let d = &catalog.doc().discounts;
    let mut plan_discounts: Vec<(&LineText, Krw, String)> = Vec::with_capacity(6);
    let mut remaining = plan_fee;
    // The selective contract and the soldier discount never combine: on a day both cover,
    // only the larger percentage applies (the contract's when they are equal).
    let both = i64::from(customer.soldier_and_contract_days(cycle));
    let soldier_rule = d.soldier.as_ref().zip(texts.soldier.as_ref());
    let soldier_wins = soldier_rule.is_some_and(|(r, _)| r.percent > d.contract.percent);
    let contract_days = i64::from(customer.contract_days(cycle)) - if soldier_wins { both } else { 0 };
    if contract_days > 0 && d.contract.percent > 0 {
        let amount = plan
            .monthly_fee
            .mul_div_floor(contract_days * i64::from(d.contract.percent), days * 100)
            .min(remaining);
        remaining -= amount;
        plan_discounts.push((
            &texts.contract,
            amount,
            format!("{}% × {contract_days}/{days}일", d.contract.percent),
        ));
    }
    if let Some((rule, text)) = soldier_rule {
        let soldier_days = i64::from(customer.soldier_days(cycle)) - if soldier_wins { 0 } else { both };
        if soldier_days > 0 && rule.percent > 0 {
            let amount = plan
                .monthly_fee
                .mul_div_floor(soldier_days * i64::from(rule.percent), days * 100)
                .min(remaining);
            remaining -= amount;
            plan_discounts.push((text, amount, format!("{}% × {soldier_days}/{days}일", rule.percent)));
        }
    }
    if let Some(f) = &customer.family
        && let Some(row) = highest_reached(
            d.family.table.iter().filter(|r| r.tier == plan.tier),
            |r| r.min_members,
            f.members,
        )
    {
        let amount = remaining.percent_floor(row.percent);
        remaining -= amount;
        plan_discounts.push((&texts.family, amount, format!("{}인 결합 {}%", f.members, row.percent)));
    }
    let years = customer.tenure_years(cycle);
    if let Some(t) = highest_reached(&d.long_term.tiers, |t| t.min_years, years) {
        let amount = remaining.percent_floor(t.percent);
        remaining -= amount;
        plan_discounts.push((&texts.long_term, amount, format!("{years}년 {}%", t.percent)));
    }
    if let Some((rule, text)) = d.premium_contract.as_ref().zip(texts.premium_contract.as_ref())
        && rule.tiers.contains(&plan.tier)
    {
        let covered = i64::from(customer.premium_contract_days(cycle));
        if covered > 0 {
            let amount = rule.amount.mul_div_floor(covered, days).min(remaining);
            remaining -= amount;
            plan_discounts.push((text, amount, format!("월 {}원 × {covered}/{days}일", rule.amount.won())));
        }
    }
    if chrono::Datelike::month(&customer.birthday) == cycle.month() {
        let amount = d.birthday.amount.min(remaining);
        plan_discounts.push((&texts.birthday, amount, String::new()));
    }
    // The cap: trim later discounts first.
    let cap = plan_fee.percent_floor(d.plan_discount_cap_percent);
    let mut excess = plan_discounts.iter().map(|x| x.1).sum::<Krw>() - cap;
    for x in plan_discounts.iter_mut().rev() {
        if excess <= Krw::ZERO {
            break;
        }
        let cut = x.1.min(excess);
        x.1 -= cut;
        excess -= cut;
    }
    let left = plan_fee - plan_discounts.iter().map(|x| x.1).sum::<Krw>();
    for (text, amount, detail) in plan_discounts {
        push_discount(&mut lines, text, amount, detail);
    }

    // 4. Welfare discount, outside the cap: a percentage of what the plan-fee discounts left,
    // for the days of eligibility, within the grade's monthly cap (prorated the same way).
    if let Some(w) = &customer.welfare
        && let Some((rule, text)) = d.welfare.as_ref().zip(texts.welfare.as_ref())
    {
        let grade =
            rule.grades
                .iter()
                .find(|g| g.grade == w.grade)
                .ok_or_else(|| RatingError::UnknownWelfareGrade {
                    customer_id: cid.to_owned(),
                    catalog_version: catalog.version().to_owned(),
                })?;
        let covered = i64::from(customer.welfare_days(cycle));
        if covered > 0 {
            let share = left.mul_div_floor(i64::from(grade.percent) * covered, 100 * active);
            let cap = grade.monthly_cap.mul_div_floor(covered, days);
            let amount = share.min(cap).min(left);
            let detail = if covered < days {
                format!("{}% × {covered}/{active}일, 한도 {}원", grade.percent, cap.won())
            } else {
                format!("{}%, 월 한도 {}원", grade.percent, cap.won())
            };
            push_discount(&mut lines, text, amount, detail);
        }
    }

    // 5. Add-on bundle discount.
    let n_addons = u32::try_from(customer.addons.len()).unwrap_or(u32::MAX);
    if let Some(t) = highest_reached(&d.addon_tiers.tiers, |t| t.min_addons, n_addons) {
        let amount = addon_total.percent_floor(t.percent).min(addon_total);
        push_discount(
            &mut lines,
            &texts.addon_tiers,
            amount,
            format!("{n_addons}개 {}%", t.percent),
        );
    }

    // 6. Wired bundle discount: the best row whose parts are all on the bill.
    if wired_total > Krw::ZERO
        && let Some((rule, text)) = d.wired_bundle.as_ref().zip(texts.wired_bundle.as_ref())
        && let Some(row) = rule
            .rows
            .iter()
            .filter(|r| r.parts.iter().all(|p| wired_parts.contains(p)))
            .max_by_key(|r| r.percent)
    {
        let amount = wired_total.percent_floor(row.percent).min(wired_total);
        let parts: Vec<&str> = row
            .parts
            .iter()
            .map(|p| match p {
                BundlePart::Mobile => "모바일",
                BundlePart::Internet => "인터넷",
                BundlePart::Iptv => "IPTV",
            })
            .collect();
        push_discount(
            &mut lines,
            text,
            amount,
            format!("{} {}%", parts.join("+"), row.percent),
        );
    }
    let discounts: Krw = lines
        .iter()
        .filter(|l| l.kind == LineKind::Discount)
        .map(|l| l.amount)
        .sum();

    // 7. VAT.
    let taxable_base: Krw = lines.iter().filter(|l| l.taxable).map(|l| l.amount).sum();
    let vat = taxable_base.percent_floor(catalog.doc().vat_percent);
    lines.push(BillLine {
        kind: LineKind::Vat,
        code: texts.vat.code.clone(),
        label: texts.vat.label.clone(),
        quantity: 1,
        unit: texts.vat.unit.clone(),
        unit_price: Krw::ZERO,
        amount: vat,
        taxable: false,
        detail: format!("{}%", catalog.doc().vat_percent),
    });

    // 8. Total.
    let gross: Krw = lines.iter().map(|l| l.amount).sum();
    let total = gross.floor_to(catalog.doc().total_rounding_unit);
    let rounding = total - gross;
    if rounding != Krw::ZERO {
        lines.push(BillLine {
            kind: LineKind::Rounding,
            code: texts.rounding.code.clone(),
            label: texts.rounding.label.clone(),
            quantity: 1,
            unit: texts.rounding.unit.clone(),
            unit_price: Krw::ZERO,
            amount: rounding,
            taxable: false,
            detail: String::new(),
        });
    }

    Ok(Some(Bill {
        cycle,
        customer_id: customer.customer_id.clone(),
        shard: customer.shard,
        catalog_version: catalog.version().to_owned(),
        charges,
        discounts,
        taxable_base,
        vat,
        rounding,
        total,
        lines,
    }))
}

/// A taxable monthly fee's line (plan, add-on, wired line): `days` of service at the monthly
/// `unit_price`, charged `amount`.
fn fee_line(kind: LineKind, text: &LineText, days: i64, unit_price: Krw, amount: Krw, detail: String) -> BillLine {
    BillLine {
        kind,
        code: text.code.clone(),
        label: text.label.clone(),
        quantity: days,
        unit: text.unit.clone(),
        unit_price,
        amount,
        taxable: true,
        detail,
    }
}

fn allowance_of(plan: &Plan, a: Allowance) -> Option<i64> {
    match a {
        Allowance::Data => plan.data_mb,
        Allowance::Voice => plan.voice_sec,
        Allowance::Sms => plan.sms,
    }
}

/// Of `rows`, the one with the highest threshold (`threshold` of a row) that `value`
/// reaches: the tier of a discount table that applies.
fn highest_reached<'a, T: 'a, K: Ord + Copy>(
    rows: impl IntoIterator<Item = &'a T>,
    threshold: impl Fn(&T) -> K,
    value: K,
) -> Option<&'a T> {
    rows.into_iter()
        .filter(|r| threshold(r) <= value)
        .max_by_key(|r| threshold(r))
}

fn push_discount(lines: &mut Vec<BillLine>, text: &LineText, amount: Krw, detail: String) {
    if amount <= Krw::ZERO {
        return;
    }
    lines.push(BillLine {
        kind: LineKind::Discount,
        code: text.code.clone(),
        label: text.label.clone(),
        quantity: 1,
        unit: text.unit.clone(),
        unit_price: Krw::ZERO,
        amount: -amount,
        taxable: true,
        detail,
    });
}

/// A usage record set aside, neither billed nor an error: its customer is in the shard but had
/// no day of service in the cycle, so there is no bill for it. Operators re-rate or drop it.
/// Names file, line, customer and product; no quantity or amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspended {
    pub file: String,
    pub line: u32,
    pub customer_id: String,
    pub product: String,
}

/// The key of a shard's suspense file in the data bucket.
pub fn suspense_key(cycle: Cycle, shard: u32) -> String {
    format!("suspense/{cycle}/shard-{shard:05}.csv")
}

/// The CSV header of a suspense file ([`suspense_csv`]).
pub const SUSPENSE_HEADER: &str = "file,line,customer_id,product";

/// The suspense file of a shard: the header, then one line per suspended record in the order
/// given. Every field is a key, a number, a customer id or a product code, none of which holds
/// a comma or a quote.
pub fn suspense_csv(suspended: &[Suspended]) -> Vec<u8> {
    let mut out = String::with_capacity(32 + suspended.len() * 48);
    out.push_str(SUSPENSE_HEADER);
    out.push('\n');
    for s in suspended {
        out.push_str(&format!("{},{},{},{}\n", s.file, s.line, s.customer_id, s.product));
    }
    out.into_bytes()
}

/// The outcome of settling one shard: bills for every billable customer, the
/// customers that had no service in the cycle, the usage set aside for them, and every
/// rejected input — usage lines and customers — each with a message naming file/line or
/// customer.
#[derive(Debug, Default)]
pub struct ShardSettlement {
    pub bills: Vec<Bill>,
    /// Customers with no day of service in the cycle (no bill, no error).
    pub not_billable: u32,
    /// Usage of customers with no day of service in the cycle, in line order: not billed, not
    /// an error (see docs/billing-rules.md).
    pub suspended: Vec<Suspended>,
    pub usage_errors: Vec<UsageError>,
    pub rating_errors: Vec<RatingError>,
    /// Usage lines read (good and bad).
    pub usage_lines: u32,
    /// Sum of all bill totals.
    pub checksum: Krw,
}

impl ShardSettlement {
    pub fn error_count(&self) -> usize {
        self.usage_errors.len() + self.rating_errors.len()
    }
}

/// Settles one shard in one linear pass: customers are ordered by id, each
/// usage record is placed next to its customer by a stable counting sort on
/// the customer's position (no comparison sort of the records), then every
/// customer is rated with its own records. Bills come out in customer-id
/// order, so the result is deterministic.
///
/// A customer id listed more than once is an error and none of its copies is
/// billed (which one would be right?); usage for a customer who is not in the
/// shard is an error naming file and line; usage for a customer of the shard who had no
/// service in the cycle is suspended ([`ShardSettlement::suspended`]).
pub fn settle<C>(
    catalog: &Catalog,
    cycle: Cycle,
    customers: &[CustomerRecord<C>],
    usage: UsageParse<'_>,
    file: &str,
) -> ShardSettlement {
    let UsageParse { records, errors, lines } = usage;
    let mut out = ShardSettlement {
        usage_errors: errors,
        usage_lines: lines,
        ..Default::default()
    };
    let reject = |r: &UsageRecord<'_>, kind| UsageError {
        file: file.to_owned(),
        line: r.line,
        customer_id: Some(r.customer_id.to_owned()),
        kind,
    };

    let mut order: Vec<&CustomerRecord<C>> = customers.iter().collect();
    order.sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
    let mut unique: Vec<&CustomerRecord<C>> = Vec::with_capacity(order.len());
    let mut i = 0;
    while i < order.len() {
        let run = order[i..]
            .iter()
            .take_while(|c| c.customer_id == order[i].customer_id)
            .count();
        if run == 1 {
            unique.push(order[i]);
        } else {
            out.rating_errors.push(RatingError::DuplicateCustomer {
                customer_id: order[i].customer_id.to_string(),
                count: run,
            });
        }
        i += run;
    }
    let position: HashMap<&str, u32> = unique
        .iter()
        .enumerate()
        .map(|(i, c)| (c.customer_id.as_str(), i as u32))
        .collect();

    // Stable counting sort of the records by their customer's position.
    let mut starts = vec![0usize; unique.len() + 1];
    let mut slots: Vec<u32> = Vec::with_capacity(records.len());
    for r in &records {
        match position.get(r.customer_id) {
            Some(&p) => {
                starts[p as usize + 1] += 1;
                slots.push(p);
            }
            None => {
                out.usage_errors.push(reject(r, UsageErrorKind::UnknownCustomer));
                slots.push(u32::MAX);
            }
        }
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut grouped = records.clone();
    let mut next = starts.clone();
    for (r, &p) in records.iter().zip(&slots) {
        if p != u32::MAX {
            grouped[next[p as usize]] = *r;
            next[p as usize] += 1;
        }
    }

    out.bills.reserve(unique.len());
    for (k, c) in unique.iter().enumerate() {
        let mine = &grouped[starts[k]..starts[k + 1]];
        match rate(catalog, cycle, c, mine) {
            Ok(Some(bill)) => {
                out.checksum += bill.total;
                out.bills.push(bill);
            }
            Ok(None) => {
                out.not_billable += 1;
                out.suspended.extend(mine.iter().map(|r| Suspended {
                    file: file.to_owned(),
                    line: r.line,
                    customer_id: r.customer_id.to_owned(),
                    product: catalog.product(r.product).map_or_else(String::new, |p| p.code.clone()),
                }));
            }
            Err(e) => out.rating_errors.push(e),
        }
    }
    out.usage_errors.sort_by_key(|e| e.line);
    out.suspended.sort_by_key(|s| s.line);
    out
}
