//! A second reading of the billing rules (`docs/billing-rules.md`), kept apart from the
//! rating engine on purpose: it shares no code with `billing` or `domain`, reads the catalog
//! and the customer as plain JSON, and computes each documented rule as an exact rational
//! (`i128` numerator over denominator) that is rounded down to the won exactly where the
//! rules say so. Tests compare the engine's totals with this one's; where they differ, one
//! of the two misreads the rules.
//!
//! It is written for clarity, not speed, and is never used to bill anyone.

use chrono::{Datelike, NaiveDate};
use serde_json::Value;

/// One usage record: a product code, a quantity in the product's unit and, for
/// pass-through products, an amount in won.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageLine {
    pub product: String,
    pub quantity: i64,
    pub amount: i64,
}

/// The bill total in won, or `None` when the customer had no day of service in the cycle.
///
/// `catalog` is a catalog document (`catalog/*.json`), `cycle` a month such as `"2026-11"`,
/// `customer` a customer record as JSON (its contact data is ignored) and `usage` the
/// customer's usage records. An unknown plan, add-on or product is an error.
pub fn total(catalog: &Value, cycle: &str, customer: &Value, usage: &[UsageLine]) -> Result<Option<i64>, String> {
    let month = Month::parse(cycle)?;
    let bill = Reading {
        catalog,
        month,
        customer,
    };
    bill.total(usage)
}

/// A calendar month: its first day and the first day of the next month.
#[derive(Copy, Clone, Debug)]
struct Month {
    first: NaiveDate,
    next_first: NaiveDate,
}

impl Month {
    fn parse(s: &str) -> Result<Month, String> {
        let (y, m) = s.split_once('-').ok_or("cycle must be YYYY-MM")?;
        let y: i32 = y.parse().map_err(|_| "cycle year")?;
        let m: u32 = m.parse().map_err(|_| "cycle month")?;
        let first = NaiveDate::from_ymd_opt(y, m, 1).ok_or("cycle month out of range")?;
        let next_first = if m == 12 {
            NaiveDate::from_ymd_opt(y + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(y, m + 1, 1)
        }
        .ok_or("cycle out of range")?;
        Ok(Month { first, next_first })
    }

    fn days(self) -> i128 {
        i128::from((self.next_first - self.first).num_days())
    }

    fn last(self) -> NaiveDate {
        self.next_first.pred_opt().unwrap_or(self.first)
    }

    /// Days of the month in the half-open range [from, until).
    fn overlap(self, from: NaiveDate, until: NaiveDate) -> i128 {
        let a = from.max(self.first);
        let b = until.min(self.next_first);
        i128::from((b - a).num_days().max(0))
    }
}

/// `n / d` rounded down (toward minus infinity).
fn floor_div(n: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    let q = n / d;
    if (n % d != 0) && ((n < 0) != (d < 0)) { q - 1 } else { q }
}

/// `n / d` rounded up, for positive `d`.
fn ceil_div(n: i128, d: i128) -> i128 {
    -floor_div(-n, d)
}

fn int(v: &Value, what: &str) -> Result<i128, String> {
    v.as_i64()
        .map(i128::from)
        .ok_or_else(|| format!("{what}: not an integer"))
}

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| format!("{what}: not a string"))
}

fn day(v: &Value, what: &str) -> Result<NaiveDate, String> {
    let s = text(v, what)?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{what}: not a date"))
}

fn opt_day(v: &Value, what: &str) -> Result<Option<NaiveDate>, String> {
    if v.is_null() { Ok(None) } else { day(v, what).map(Some) }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn find<'a>(items: &'a Value, code: &str) -> Option<&'a Value> {
    list(items).iter().find(|x| x["code"].as_str() == Some(code))
}

/// Whole years from `since` to `at`; someone who joined on 29 February has an anniversary on
/// 28 February in a year without a 29th.
fn whole_years(since: NaiveDate, at: NaiveDate) -> i128 {
    if at < since {
        return 0;
    }
    let mut years = i128::from(at.year() - since.year());
    let leap_day_anniversary = since.month() == 2
        && since.day() == 29
        && at.month() == 2
        && at.day() == 28
        && NaiveDate::from_ymd_opt(at.year(), 2, 29).is_none();
    if (at.month(), at.day()) < (since.month(), since.day()) && !leap_day_anniversary {
        years -= 1;
    }
    years.max(0)
}

/// The row of `rows` with the largest `key` that `value` reaches.
fn best_row<'a>(rows: impl Iterator<Item = &'a Value>, key: &str, value: i128) -> Option<&'a Value> {
    let mut best: Option<(&Value, i128)> = None;
    for r in rows {
        let Some(k) = r[key].as_i64().map(i128::from) else {
            continue;
        };
        if k <= value && best.is_none_or(|(_, b)| k > b) {
            best = Some((r, k));
        }
    }
    best.map(|(r, _)| r)
}

struct Reading<'a> {
    catalog: &'a Value,
    month: Month,
    customer: &'a Value,
}

impl Reading<'_> {
    fn total(&self, usage: &[UsageLine]) -> Result<Option<i64>, String> {
        let cat = self.catalog;
        let cust = self.customer;
        let month = self.month;
        let days = month.days();

        // Service: from joined_on (inclusive) to cancelled_on (exclusive).
        let joined = day(&cust["joined_on"], "joined_on")?;
        let cancelled = opt_day(&cust["cancelled_on"], "cancelled_on")?;
        let service_end = cancelled.unwrap_or(month.next_first);
        let active = month.overlap(joined, service_end);
        if active == 0 {
            return Ok(None);
        }

        let plan_code = text(&cust["plan"], "plan")?;
        let plan = find(&cat["plans"], plan_code).ok_or_else(|| format!("plan {plan_code} not in catalog"))?;
        let plan_monthly = int(&plan["monthly_fee"], "plan fee")?;

        // 1. Fees: monthly fee × active days ÷ days of the month, rounded down.
        let plan_fee = floor_div(plan_monthly * active, days);
        let mut taxable: i128 = plan_fee;
        let mut untaxed: i128 = 0;
        let mut addon_charges: i128 = 0;
        let addons = list(&cust["addons"]);
        for a in addons {
            let code = text(a, "add-on")?;
            let addon = find(&cat["addons"], code).ok_or_else(|| format!("add-on {code} not in catalog"))?;
            // A row for the plan itself, else a row for the plan's tier, else the list price.
            let rows = list(&addon["plan_prices"]);
            let for_plan = rows.iter().find(|r| r["plan"].as_str() == Some(plan_code));
            let for_tier = rows
                .iter()
                .find(|r| r["tier"].is_string() && r["tier"].as_str() == plan["tier"].as_str());
            let monthly = match for_plan.or(for_tier) {
                Some(row) => int(&row["monthly_fee"], "add-on plan price")?,
                None => int(&addon["monthly_fee"], "add-on fee")?,
            };
            addon_charges += floor_div(monthly * active, days);
        }
        taxable += addon_charges;

        // Wired lines, prorated like add-ons; the kinds on the bill for the bundle.
        let mut wired_charges: i128 = 0;
        let mut on_bill: Vec<&str> = vec!["mobile"];
        for w in list(&cust["wired"]) {
            let code = text(&w["product"], "wired product")?;
            let product =
                find(&cat["wired_products"], code).ok_or_else(|| format!("wired product {code} not in catalog"))?;
            wired_charges += floor_div(int(&product["monthly_fee"], "wired fee")? * active, days);
            on_bill.push(text(&product["kind"], "wired kind")?);
        }
        taxable += wired_charges;

        // 2. Usage, per product.
        for product in list(&cat["usage_products"]) {
            let code = text(&product["code"], "product code")?;
            let mine: Vec<&UsageLine> = usage.iter().filter(|u| u.product == code).collect();
            if mine.is_empty() {
                continue;
            }
            let quantity: i128 = mine.iter().map(|u| i128::from(u.quantity)).sum();
            let recorded: i128 = mine.iter().map(|u| i128::from(u.amount)).sum();
            let pricing = &product["pricing"];
            let charge = if pricing.as_str() == Some("pass_through") {
                recorded
            } else {
                let m = &pricing["metered"];
                let block = int(&m["block"], "block")?;
                let price = int(&m["price_per_block"], "price_per_block")?;
                let beyond = match m["allowance"].as_str() {
                    None => quantity,
                    Some(kind) => {
                        let key = match kind {
                            "data" => "data_mb",
                            "voice" => "voice_sec",
                            "sms" => "sms",
                            other => return Err(format!("unknown allowance {other}")),
                        };
                        match plan[key].as_i64() {
                            // Unlimited on this plan.
                            None => 0,
                            Some(included) => {
                                let included = floor_div(i128::from(included) * active, days);
                                (quantity - included).max(0)
                            }
                        }
                    }
                };
                ceil_div(beyond, block) * price
            };
            if product["taxable"].as_bool() == Some(true) {
                taxable += charge;
            } else {
                untaxed += charge;
            }
        }
        for u in usage {
            if find(&cat["usage_products"], &u.product).is_none() {
                return Err(format!("product {} not in catalog", u.product));
            }
        }

        // 3. Plan-fee discounts, each on what the earlier ones left, then the cap.
        let disc = &cat["discounts"];
        let mut plan_discounts: Vec<i128> = Vec::new();
        let mut left = plan_fee;

        // Days of the month with service inside a dated attribute, both ends inclusive.
        let covered = |start: NaiveDate, end: Option<NaiveDate>| -> i128 {
            let until = match end {
                Some(e) => e.succ_opt().unwrap_or(e).min(service_end),
                None => service_end,
            };
            month.overlap(start.max(joined), until)
        };
        let period = |key: &str| -> Result<Option<(NaiveDate, NaiveDate)>, String> {
            let v = &cust[key];
            if v.is_null() {
                return Ok(None);
            }
            Ok(Some((day(&v["start"], key)?, day(&v["end"], key)?)))
        };
        let contract = period("contract")?;
        let soldier = period("soldier")?;
        let contract_pct = int(&disc["contract"]["percent"], "contract percent")?;
        let soldier_pct = if disc["soldier"].is_null() {
            None
        } else {
            Some(int(&disc["soldier"]["percent"], "soldier percent")?)
        };
        let mut contract_days = contract.map_or(0, |(s, e)| covered(s, Some(e)));
        let mut soldier_days = match (soldier, soldier_pct) {
            (Some((s, e)), Some(_)) => covered(s, Some(e)),
            _ => 0,
        };
        // A day under both a contract and military service takes only the larger percentage,
        // the contract's on a tie.
        if let (Some((cs, ce)), Some((ss, se)), Some(sp)) = (contract, soldier, soldier_pct)
            && cs.max(ss) <= ce.min(se)
        {
            let both = covered(cs.max(ss), Some(ce.min(se)));
            if sp > contract_pct {
                contract_days -= both;
            } else {
                soldier_days -= both;
            }
        }

        // Selective contract: percent of the monthly fee for the covered days (end inclusive).
        if contract_days > 0 && contract_pct > 0 {
            let x = floor_div(plan_monthly * contract_days * contract_pct, days * 100).min(left);
            left -= x;
            plan_discounts.push(x);
        }

        // Soldier: percent of the monthly fee for the days of military service.
        if let Some(sp) = soldier_pct
            && soldier_days > 0
            && sp > 0
        {
            let x = floor_div(plan_monthly * soldier_days * sp, days * 100).min(left);
            left -= x;
            plan_discounts.push(x);
        }

        // Family bundle: the row of the plan's tier with the most members reached.
        if !cust["family"].is_null() {
            let members = int(&cust["family"]["members"], "family members")?;
            let tier = plan["tier"].as_str();
            let rows = list(&disc["family"]["table"])
                .iter()
                .filter(|r| r["tier"].as_str() == tier);
            if let Some(row) = best_row(rows, "min_members", members) {
                let x = floor_div(left * int(&row["percent"], "family percent")?, 100);
                left -= x;
                plan_discounts.push(x);
            }
        }

        // Long-term customer: full years of tenure on the month's last day.
        let years = whole_years(joined, month.last());
        if let Some(t) = best_row(list(&disc["long_term"]["tiers"]).iter(), "min_years", years) {
            let x = floor_div(left * int(&t["percent"], "long-term percent")?, 100);
            left -= x;
            plan_discounts.push(x);
        }

        // Premium contract: a fixed monthly amount on the listed tiers, prorated by covered days.
        let premium = &disc["premium_contract"];
        if !premium.is_null()
            && let Some((ps, pe)) = period("premium_contract")?
            && list(&premium["tiers"])
                .iter()
                .any(|t| t.as_str() == plan["tier"].as_str())
        {
            let days_covered = covered(ps, Some(pe));
            if days_covered > 0 {
                let x = floor_div(int(&premium["amount"], "premium amount")? * days_covered, days).min(left);
                left -= x;
                plan_discounts.push(x);
            }
        }

        // Birthday month: a fixed amount, not prorated.
        let birthday = day(&cust["birthday"], "birthday")?;
        if birthday.month() == month.first.month() {
            let x = int(&disc["birthday"]["amount"], "birthday amount")?.min(left);
            plan_discounts.push(x);
        }

        // The cap on the plan-fee discounts together; the last ones give way first.
        let cap = floor_div(plan_fee * int(&disc["plan_discount_cap_percent"], "cap")?, 100);
        let mut over = plan_discounts.iter().sum::<i128>() - cap;
        for x in plan_discounts.iter_mut().rev() {
            if over <= 0 {
                break;
            }
            let cut = (*x).min(over);
            *x -= cut;
            over -= cut;
        }
        let mut discount: i128 = plan_discounts.iter().sum();
        let after_capped = plan_fee - discount;

        // Welfare: outside the cap, a percentage of what the capped discounts left, for the
        // eligible share of the days of service, never above the grade's cap for those days.
        let welfare = &cust["welfare"];
        if !welfare.is_null() && !disc["welfare"].is_null() {
            let grade = text(&welfare["grade"], "welfare grade")?;
            let row = list(&disc["welfare"]["grades"])
                .iter()
                .find(|g| g["grade"].as_str() == Some(grade))
                .ok_or("welfare grade not in catalog")?;
            let eligible = covered(
                day(&welfare["start"], "welfare start")?,
                opt_day(&welfare["end"], "welfare end")?,
            );
            if eligible > 0 {
                let pct = int(&row["percent"], "welfare percent")?;
                let by_rate = floor_div(after_capped * pct * eligible, 100 * active);
                let by_cap = floor_div(int(&row["monthly_cap"], "welfare cap")? * eligible, days);
                discount += by_rate.min(by_cap);
            }
        }

        // 4. Add-on bundle discount by the number of add-ons.
        let n = i128::try_from(addons.len()).unwrap_or(i128::MAX);
        if let Some(t) = best_row(list(&disc["addon_tiers"]["tiers"]).iter(), "min_addons", n) {
            discount += floor_div(addon_charges * int(&t["percent"], "add-on percent")?, 100).min(addon_charges);
        }

        // Wired bundle: the largest percentage among the rows whose parts are all on the bill.
        let bundle = &disc["wired_bundle"];
        if wired_charges > 0 && !bundle.is_null() {
            let mut best: i128 = 0;
            for row in list(&bundle["rows"]) {
                let all_there = list(&row["parts"])
                    .iter()
                    .all(|p| p.as_str().is_some_and(|p| on_bill.contains(&p)));
                if all_there {
                    best = best.max(int(&row["percent"], "bundle percent")?);
                }
            }
            discount += floor_div(wired_charges * best, 100);
        }

        // 5. VAT on the discounted taxable charges.
        let base = taxable - discount;
        let vat = floor_div(base * int(&cat["vat_percent"], "vat_percent")?, 100);

        // 6. Total, rounded down to the rounding unit.
        let unit = int(&cat["total_rounding_unit"], "total_rounding_unit")?.max(1);
        let gross = base + vat + untaxed;
        let total = floor_div(gross, unit) * unit;
        i64::try_from(total)
            .map(Some)
            .map_err(|_| "total out of range".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_helpers() {
        assert_eq!(floor_div(7, 2), 3);
        assert_eq!(floor_div(-7, 2), -4);
        assert_eq!(ceil_div(7, 2), 4);
        assert_eq!(ceil_div(0, 10), 0);
        let feb29 = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(whole_years(feb29, NaiveDate::from_ymd_opt(2025, 2, 28).unwrap()), 1);
        assert_eq!(whole_years(feb29, NaiveDate::from_ymd_opt(2025, 2, 27).unwrap()), 0);
    }
}
