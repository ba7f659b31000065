//! The per-customer difference between a shard's live bills and its bills re-rated with
//! another catalog version: pure, no I/O.
//!
//! A customer is **changed** when their total differs, or when they have a bill on one side
//! only (billed live but not now, or the reverse). For a changed customer every line whose
//! amount differs is listed, by its catalog code (lines of the same code on one bill are
//! summed; a line on one side only counts as 0 won on the other).

use std::collections::HashMap;

use domain::Bill;
use serde::{Deserialize, Serialize};

/// One line of a bill whose amount changed, in won.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineChange {
    pub code: String,
    pub old: i64,
    pub new: i64,
}

/// A changed customer: one line of `diff.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDiff {
    pub customer_id: String,
    pub shard: u32,
    pub plan: String,
    /// The live bill's total; `None` when the customer has no live bill.
    pub old_total: Option<i64>,
    /// The re-rated total; `None` when the customer is not billed now.
    pub new_total: Option<i64>,
    /// `new_total − old_total`, an absent bill counting 0 won.
    pub delta: i64,
    pub lines: Vec<LineChange>,
}

/// What comparing one shard's bills found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardDiff {
    /// Changed customers, in customer-id order.
    pub changed: Vec<CustomerDiff>,
    /// Every customer with a bill on either side: customer id, plan and delta (0 when
    /// unchanged), for the by-plan figures.
    pub compared: Vec<(String, String, i64)>,
    pub bills_old: u64,
    pub bills_new: u64,
    pub sum_old: i64,
    pub sum_new: i64,
    /// Customers billed live and not now.
    pub only_old: u64,
    /// Customers billed now and not live.
    pub only_new: u64,
    /// Customers whose total is the same but some line moved (not counted as changed).
    pub lines_changed_same_total: u64,
}

/// The plan a bill was rated on: the code of its plan line (empty if it has none).
pub fn bill_plan(bill: &Bill) -> String {
    bill.lines
        .iter()
        .find(|l| l.kind == domain::LineKind::Plan)
        .map(|l| l.code.to_string())
        .unwrap_or_default()
}

/// Each code's summed amount, in the order the codes first appear.
fn amounts(bill: Option<&Bill>) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for l in bill.map(|b| b.lines.as_slice()).unwrap_or_default() {
        match out.iter_mut().find(|(c, _)| c.as_str() == &*l.code) {
            Some((_, a)) => *a += l.amount.won(),
            None => out.push((l.code.to_string(), l.amount.won())),
        }
    }
    out
}

/// The lines whose amount differs between two bills of one customer.
pub fn line_changes(old: Option<&Bill>, new: Option<&Bill>) -> Vec<LineChange> {
    let old = amounts(old);
    let mut new = amounts(new);
    let mut out = Vec::new();
    for (code, o) in old {
        let n = match new.iter().position(|(c, _)| *c == code) {
            Some(i) => new.remove(i).1,
            None => 0,
        };
        if n != o {
            out.push(LineChange { code, old: o, new: n });
        }
    }
    out.extend(
        new.into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(code, n)| LineChange { code, old: 0, new: n }),
    );
    out
}

/// Compares the live bills of `shard` with the re-rated ones. `plans` gives each rated
/// customer's plan (a customer billed live but absent from the inputs takes the plan of its
/// live bill).
pub fn diff_shard(shard: u32, plans: &HashMap<String, String>, old: &[Bill], new: &[Bill]) -> ShardDiff {
    let mut old: Vec<&Bill> = old.iter().collect();
    let mut new: Vec<&Bill> = new.iter().collect();
    old.sort_by(|a, b| a.customer_id.as_str().cmp(b.customer_id.as_str()));
    new.sort_by(|a, b| a.customer_id.as_str().cmp(b.customer_id.as_str()));
    let mut out = ShardDiff {
        bills_old: old.len() as u64,
        bills_new: new.len() as u64,
        sum_old: old.iter().map(|b| b.total.won()).sum(),
        sum_new: new.iter().map(|b| b.total.won()).sum(),
        ..ShardDiff::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let (o, n) = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => match o.customer_id.as_str().cmp(n.customer_id.as_str()) {
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (Some(*o), Some(*n))
                }
                std::cmp::Ordering::Less => {
                    i += 1;
                    (Some(*o), None)
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    (None, Some(*n))
                }
            },
            (Some(o), None) => {
                i += 1;
                (Some(*o), None)
            }
            (None, Some(n)) => {
                j += 1;
                (None, Some(*n))
            }
            (None, None) => break,
        };
        let Some(any) = o.or(n) else { break };
        let id = any.customer_id.as_str().to_owned();
        let plan = plans.get(&id).cloned().unwrap_or_else(|| bill_plan(any));
        let old_total = o.map(|b| b.total.won());
        let new_total = n.map(|b| b.total.won());
        let delta = new_total.unwrap_or(0) - old_total.unwrap_or(0);
        let changed = old_total != new_total;
        out.only_old += u64::from(n.is_none());
        out.only_new += u64::from(o.is_none());
        out.compared.push((id.clone(), plan.clone(), delta));
        if changed {
            out.changed.push(CustomerDiff {
                customer_id: id,
                shard,
                plan,
                old_total,
                new_total,
                delta,
                lines: line_changes(o, n),
            });
        } else if o.map(|b| &b.lines) != n.map(|b| &b.lines) && !line_changes(o, n).is_empty() {
            out.lines_changed_same_total += 1;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use domain::{BillLine, Krw, LineKind};

    use super::*;

    pub(crate) fn line(kind: LineKind, code: &str, amount: i64) -> BillLine {
        BillLine {
            kind,
            code: Arc::from(code),
            label: Arc::from(code),
            quantity: 1,
            unit: Arc::from("month"),
            unit_price: Krw(amount),
            amount: Krw(amount),
            taxable: true,
            detail: String::new(),
        }
    }

    pub(crate) fn bill(customer: &str, plan: &str, fee: i64, discount: i64) -> Bill {
        let base = fee + discount;
        let vat = base / 10;
        let lines = vec![
            line(LineKind::Plan, plan, fee),
            line(LineKind::Discount, "DISC_LONG_TERM", discount),
            line(LineKind::Vat, "VAT", vat),
        ];
        Bill {
            cycle: "2026-11".parse().unwrap(),
            customer_id: domain::CustomerId::new(customer).unwrap(),
            shard: 3,
            catalog_version: "2026-v1".into(),
            charges: Krw(fee),
            discounts: Krw(discount),
            taxable_base: Krw(base),
            vat: Krw(vat),
            rounding: Krw(0),
            total: Krw(base + vat),
            lines,
        }
    }

    #[test]
    fn equal_bills_are_not_changed() {
        let old = vec![bill("C1", "5G_STANDARD", 69_000, -6_900), bill("C2", "LTE", 33_000, 0)];
        let d = diff_shard(3, &HashMap::new(), &old, &old.clone());
        assert!(d.changed.is_empty());
        assert_eq!(d.compared.len(), 2);
        assert_eq!((d.bills_old, d.bills_new, d.only_old, d.only_new), (2, 2, 0, 0));
        assert_eq!(d.sum_old, d.sum_new);
    }

    #[test]
    fn a_changed_total_lists_the_lines_that_moved() {
        let old = vec![bill("C1", "5G_STANDARD", 69_000, -6_900), bill("C2", "LTE", 33_000, 0)];
        let new = vec![bill("C1", "5G_STANDARD", 66_000, -7_920), bill("C2", "LTE", 33_000, 0)];
        let d = diff_shard(3, &HashMap::new(), &old, &new);
        assert_eq!(d.changed.len(), 1);
        let c = &d.changed[0];
        assert_eq!(c.customer_id, "C1");
        assert_eq!(c.plan, "5G_STANDARD");
        assert_eq!(c.old_total, Some(old[0].total.won()));
        assert_eq!(c.new_total, Some(new[0].total.won()));
        assert_eq!(c.delta, new[0].total.won() - old[0].total.won());
        let codes: Vec<&str> = c.lines.iter().map(|l| l.code.as_str()).collect();
        assert_eq!(codes, ["5G_STANDARD", "DISC_LONG_TERM", "VAT"]);
        assert_eq!(
            c.lines[0],
            LineChange {
                code: "5G_STANDARD".into(),
                old: 69_000,
                new: 66_000
            }
        );
        assert_eq!(d.sum_new - d.sum_old, c.delta);
    }

    #[test]
    fn a_bill_on_one_side_only_is_a_change_and_the_plan_comes_from_the_inputs() {
        let old = vec![bill("C1", "LTE", 33_000, 0)];
        let new = vec![bill("C2", "5G_STANDARD", 66_000, 0)];
        let plans = HashMap::from([("C2".to_owned(), "5G_STANDARD".to_owned())]);
        let d = diff_shard(3, &plans, &old, &new);
        assert_eq!(d.changed.len(), 2);
        assert_eq!((d.only_old, d.only_new), (1, 1));
        let c1 = &d.changed[0];
        assert_eq!((c1.old_total, c1.new_total, c1.delta), (Some(36_300), None, -36_300));
        assert_eq!(c1.plan, "LTE");
        assert!(c1.lines.iter().all(|l| l.new == 0));
        let c2 = &d.changed[1];
        assert_eq!((c2.old_total, c2.new_total), (None, Some(72_600)));
        assert!(c2.lines.iter().all(|l| l.old == 0));
    }

    #[test]
    fn lines_of_one_code_are_summed_and_a_shift_with_the_same_total_is_counted_apart() {
        let mut a = bill("C1", "LTE", 33_000, 0);
        a.lines.push(line(LineKind::Usage, "DATA", 500));
        a.lines.push(line(LineKind::Usage, "DATA", 500));
        let mut b = a.clone();
        b.lines.truncate(3);
        b.lines.push(line(LineKind::Usage, "DATA", 1_000));
        assert!(line_changes(Some(&a), Some(&b)).is_empty());
        // Same total, lines moved.
        let mut c = a.clone();
        c.lines[0].amount = Krw(32_000);
        c.lines.push(line(LineKind::Usage, "VOICE", 1_000));
        let d = diff_shard(3, &HashMap::new(), &[a], &[c]);
        assert!(d.changed.is_empty());
        assert_eq!(d.lines_changed_same_total, 1);
    }
}
