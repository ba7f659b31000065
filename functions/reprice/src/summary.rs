//! A re-pricing's figures: per shard, then merged for the month. Everything in a summary
//! adds up across shards (counts, sums, histogram buckets, per-plan figures) or is re-ranked
//! (the top 20), so the month's summary is the merge of its shards' in any order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diff::{CustomerDiff, ShardDiff};

/// Customers listed in the top by |delta|.
pub const TOP: usize = 20;

/// The histogram's buckets of deltas (won), for changed customers: `(label, min, max)`, both
/// bounds inclusive, `None` unbounded. Unchanged customers are `customers − changed`.
pub const BUCKETS: [(&str, Option<i64>, Option<i64>); 12] = [
    ("≤ −50,000", None, Some(-50_000)),
    ("−49,999 … −10,000", Some(-49_999), Some(-10_000)),
    ("−9,999 … −5,000", Some(-9_999), Some(-5_000)),
    ("−4,999 … −1,000", Some(-4_999), Some(-1_000)),
    ("−999 … −100", Some(-999), Some(-100)),
    ("−99 … −1", Some(-99), Some(-1)),
    ("1 … 99", Some(1), Some(99)),
    ("100 … 999", Some(100), Some(999)),
    ("1,000 … 4,999", Some(1_000), Some(4_999)),
    ("5,000 … 9,999", Some(5_000), Some(9_999)),
    ("10,000 … 49,999", Some(10_000), Some(49_999)),
    ("≥ 50,000", Some(50_000), None),
];

/// The bucket of a non-zero delta; `None` for 0 (unchanged).
pub fn bucket_of(delta: i64) -> Option<usize> {
    if delta == 0 {
        return None;
    }
    BUCKETS
        .iter()
        .position(|(_, lo, hi)| lo.is_none_or(|lo| delta >= lo) && hi.is_none_or(|hi| delta <= hi))
}

/// One bucket of the histogram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub label: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub count: u64,
}

/// The histogram of deltas of changed customers, every bucket present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histogram(pub Vec<Bucket>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(
            BUCKETS
                .iter()
                .map(|(label, min, max)| Bucket {
                    label: (*label).to_owned(),
                    min: *min,
                    max: *max,
                    count: 0,
                })
                .collect(),
        )
    }
}

impl Histogram {
    pub fn add(&mut self, delta: i64) {
        if let Some(b) = bucket_of(delta).and_then(|i| self.0.get_mut(i)) {
            b.count += 1;
        }
    }

    /// Adds `other`'s counts, bucket by bucket (matched by bounds).
    pub fn merge(&mut self, other: &Histogram) {
        for o in &other.0 {
            match self.0.iter_mut().find(|b| b.min == o.min && b.max == o.max) {
                Some(b) => b.count += o.count,
                None => self.0.push(o.clone()),
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|b| b.count).sum()
    }
}

/// A customer of the top by |delta|.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    pub customer_id: String,
    pub shard: u32,
    pub plan: String,
    pub old_total: Option<i64>,
    pub new_total: Option<i64>,
    pub delta: i64,
}

impl From<&CustomerDiff> for TopEntry {
    fn from(d: &CustomerDiff) -> Self {
        TopEntry {
            customer_id: d.customer_id.clone(),
            shard: d.shard,
            plan: d.plan.clone(),
            old_total: d.old_total,
            new_total: d.new_total,
            delta: d.delta,
        }
    }
}

/// Keeps the `TOP` largest by |delta| (ties: customer id ascending).
fn rank(top: &mut Vec<TopEntry>) {
    top.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    top.truncate(TOP);
}

/// One plan's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFigures {
    /// Customers with a bill on either side.
    pub customers: u64,
    pub changed: u64,
    pub sum_delta: i64,
}

/// Where the shards' rating inputs came from (`adapters::snapshots::InputsSource`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The rating snapshot settlement wrote: exactly what the month was billed on.
    Snapshot,
    /// No snapshot (a month settled before snapshots): the customers table as it is now.
    LiveCustomers,
}

impl From<adapters::snapshots::InputsSource> for Source {
    fn from(s: adapters::snapshots::InputsSource) -> Self {
        match s {
            adapters::snapshots::InputsSource::Snapshot => Source::Snapshot,
            adapters::snapshots::InputsSource::LiveCustomers => Source::LiveCustomers,
        }
    }
}

/// Shards by the source of their rating inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    pub snapshot: u32,
    pub live_customers: u32,
}

/// The figures of a shard or of the month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub cycle: String,
    pub catalog: String,
    pub live_catalog: String,
    pub run: String,
    pub shards: u32,
    /// Customers in the rating inputs.
    pub customers: u64,
    pub bills_old: u64,
    pub bills_new: u64,
    /// Customers whose total changed (a bill on one side only included).
    pub changed: u64,
    /// Customers billed live and not now, and the reverse (both among `changed`).
    pub only_old: u64,
    pub only_new: u64,
    /// Customers whose total is the same while some line moved (not among `changed`).
    pub lines_changed_same_total: u64,
    pub sum_old: i64,
    pub sum_new: i64,
    pub sum_delta: i64,
    pub histogram: Histogram,
    pub top: Vec<TopEntry>,
    pub by_plan: BTreeMap<String, PlanFigures>,
    pub inputs: Sources,
}

impl Summary {
    /// An empty summary of a run.
    pub fn empty(cycle: &str, catalog: &str, live_catalog: &str, run: &str) -> Summary {
        Summary {
            cycle: cycle.to_owned(),
            catalog: catalog.to_owned(),
            live_catalog: live_catalog.to_owned(),
            run: run.to_owned(),
            shards: 0,
            customers: 0,
            bills_old: 0,
            bills_new: 0,
            changed: 0,
            only_old: 0,
            only_new: 0,
            lines_changed_same_total: 0,
            sum_old: 0,
            sum_new: 0,
            sum_delta: 0,
            histogram: Histogram::default(),
            top: Vec::new(),
            by_plan: BTreeMap::new(),
            inputs: Sources::default(),
        }
    }

    /// One shard's summary from its diff.
    pub fn of_shard(mut self, customers: u64, diff: &ShardDiff, source: Source) -> Summary {
        self.shards = 1;
        self.customers = customers;
        self.bills_old = diff.bills_old;
        self.bills_new = diff.bills_new;
        self.changed = diff.changed.len() as u64;
        self.only_old = diff.only_old;
        self.only_new = diff.only_new;
        self.lines_changed_same_total = diff.lines_changed_same_total;
        self.sum_old = diff.sum_old;
        self.sum_new = diff.sum_new;
        self.sum_delta = diff.sum_new - diff.sum_old;
        for c in &diff.changed {
            self.histogram.add(c.delta);
        }
        self.top = diff.changed.iter().map(TopEntry::from).collect();
        rank(&mut self.top);
        for (_, plan, delta) in &diff.compared {
            let p = self.by_plan.entry(plan.clone()).or_default();
            p.customers += 1;
            p.changed += u64::from(*delta != 0);
            p.sum_delta += delta;
        }
        // A bill on one side only with a zero total is not a change of money; the by-plan
        // count follows `changed`, which counts it.
        for c in diff.changed.iter().filter(|c| c.delta == 0) {
            if let Some(p) = self.by_plan.get_mut(&c.plan) {
                p.changed += 1;
            }
        }
        match source {
            Source::Snapshot => self.inputs.snapshot = 1,
            Source::LiveCustomers => self.inputs.live_customers = 1,
        }
        self
    }

    /// Adds `other` (another shard, or a merged set of shards) to this one.
    pub fn merge(&mut self, other: &Summary) {
        self.shards += other.shards;
        self.customers += other.customers;
        self.bills_old += other.bills_old;
        self.bills_new += other.bills_new;
        self.changed += other.changed;
        self.only_old += other.only_old;
        self.only_new += other.only_new;
        self.lines_changed_same_total += other.lines_changed_same_total;
        self.sum_old += other.sum_old;
        self.sum_new += other.sum_new;
        self.sum_delta += other.sum_delta;
        self.histogram.merge(&other.histogram);
        self.top.extend(other.top.iter().cloned());
        rank(&mut self.top);
        for (plan, f) in &other.by_plan {
            let p = self.by_plan.entry(plan.clone()).or_default();
            p.customers += f.customers;
            p.changed += f.changed;
            p.sum_delta += f.sum_delta;
        }
        self.inputs.snapshot += other.inputs.snapshot;
        self.inputs.live_customers += other.inputs.live_customers;
    }
}

/// A shard's summary object (`shards/shard-NNNNN.summary.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSummary {
    pub shard: u32,
    /// Where this shard's rating inputs came from.
    pub source: Source,
    /// Changed customers written to the shard's diff lines.
    pub diff_lines: u64,
    pub summary: Summary,
}

/// `12,345` / `−12,345` / `+12,345` (signed).
pub fn won(n: i64, signed: bool) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match (n < 0, signed && n > 0) {
        (true, _) => format!("−{grouped}"),
        (false, true) => format!("+{grouped}"),
        _ => grouped,
    }
}

fn opt_won(n: Option<i64>) -> String {
    n.map_or_else(|| "—".to_owned(), |n| won(n, false))
}

/// The summary as the terminal shows it (billingctl reprice, local-run reprice, the month's
/// audit line aside).
pub fn render_terminal(s: &Summary) -> String {
    let mut out = String::new();
    let line = |out: &mut String, text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "re-priced  cycle {} with catalog {} (settled with {}), run {}",
            s.cycle, s.catalog, s.live_catalog, s.run
        ),
    );
    let sources = match (s.inputs.snapshot, s.inputs.live_customers) {
        (n, 0) => format!("rating snapshots of all {n} shards"),
        (0, n) => format!("the customers table as it is now for all {n} shards (no snapshots)"),
        (a, b) => format!("{a} shards from their rating snapshot, {b} from the customers table as it is now"),
    };
    line(&mut out, format!("inputs     {sources}"));
    line(
        &mut out,
        format!(
            "customers  {} rated; {} of them changed ({} billed live only, {} billed now only); {} bills live, {} now",
            won(s.customers as i64, false),
            won(s.changed as i64, false),
            s.only_old,
            s.only_new,
            won(s.bills_old as i64, false),
            won(s.bills_new as i64, false),
        ),
    );
    if s.lines_changed_same_total > 0 {
        line(
            &mut out,
            format!(
                "           {} more with the same total and some line moved",
                s.lines_changed_same_total
            ),
        );
    }
    line(
        &mut out,
        format!(
            "money      Σ old {} won, Σ new {} won, Σ delta {} won",
            won(s.sum_old, false),
            won(s.sum_new, false),
            won(s.sum_delta, true)
        ),
    );
    if s.changed > 0 {
        line(&mut out, "deltas     (won, changed customers)".to_owned());
        let max = s.histogram.0.iter().map(|b| b.count).max().unwrap_or(0).max(1);
        for b in s.histogram.0.iter().filter(|b| b.count > 0) {
            let bar = "#".repeat(((b.count * 40).div_ceil(max)) as usize);
            line(
                &mut out,
                format!("  {:>20}  {:>9}  {bar}", b.label, won(b.count as i64, false)),
            );
        }
        line(&mut out, format!("top {} by |delta|", s.top.len()));
        line(
            &mut out,
            format!(
                "  {:<14} {:>5}  {:<16} {:>12} {:>12} {:>10}",
                "customer", "shard", "plan", "old", "new", "delta"
            ),
        );
        for t in &s.top {
            line(
                &mut out,
                format!(
                    "  {:<14} {:>5}  {:<16} {:>12} {:>12} {:>10}",
                    t.customer_id,
                    t.shard,
                    t.plan,
                    opt_won(t.old_total),
                    opt_won(t.new_total),
                    won(t.delta, true)
                ),
            );
        }
    }
    line(&mut out, "by plan".to_owned());
    line(
        &mut out,
        format!(
            "  {:<16} {:>10} {:>10} {:>14}",
            "plan", "customers", "changed", "Σ delta"
        ),
    );
    for (plan, f) in &s.by_plan {
        line(
            &mut out,
            format!(
                "  {:<16} {:>10} {:>10} {:>14}",
                plan,
                won(f.customers as i64, false),
                won(f.changed as i64, false),
                won(f.sum_delta, true)
            ),
        );
    }
    out
}

/// The one line the month job prints after an audit with the settled version.
pub fn audit_line(s: &Summary) -> String {
    format!(
        "re-priced with {}: {} of {} customers changed",
        s.catalog,
        won(s.changed as i64, false),
        won(s.customers as i64, false)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::diff::diff_shard;
    use crate::diff::tests::bill;

    #[test]
    fn every_non_zero_delta_has_exactly_one_bucket() {
        for d in [
            -1_000_000,
            -50_000,
            -49_999,
            -10_000,
            -1,
            1,
            99,
            100,
            4_999,
            50_000,
            i64::MAX,
            i64::MIN,
        ] {
            let n = BUCKETS
                .iter()
                .filter(|(_, lo, hi)| lo.is_none_or(|lo| d >= lo) && hi.is_none_or(|hi| d <= hi))
                .count();
            assert_eq!(n, 1, "{d}");
            assert!(bucket_of(d).is_some());
        }
        assert_eq!(bucket_of(0), None);
        assert_eq!(bucket_of(-3_300), Some(3));
        assert_eq!(bucket_of(120), Some(7));
        let mut h = Histogram::default();
        for d in [-3_300, -3_300, 120, 0] {
            h.add(d);
        }
        assert_eq!(h.total(), 3);
        assert_eq!(h.0[3].count, 2);
    }

    fn shard(n: u32, bills: &[(&str, i64, i64)]) -> Summary {
        let old: Vec<_> = bills.iter().map(|(c, o, _)| bill(c, "5G_STANDARD", *o, 0)).collect();
        let new: Vec<_> = bills.iter().map(|(c, _, n)| bill(c, "5G_STANDARD", *n, 0)).collect();
        let mut d = diff_shard(n, &HashMap::new(), &old, &new);
        for c in &mut d.changed {
            c.shard = n;
        }
        Summary::empty("2026-11", "2026-v2", "2026-v1", "r1").of_shard(bills.len() as u64, &d, Source::Snapshot)
    }

    #[test]
    fn merging_adds_up_and_reranks_the_top_in_any_order() {
        let a = shard(
            0,
            &[("C1", 69_000, 66_000), ("C2", 33_000, 33_000), ("C3", 10_000, 60_000)],
        );
        let b = shard(1, &[("C4", 69_000, 66_000), ("C5", 50_000, 49_990)]);
        assert_eq!(a.changed, 2);
        assert_eq!(a.sum_delta, (-3_000 + 50_000) * 11 / 10);
        let mut ab = Summary::empty("2026-11", "2026-v2", "2026-v1", "r1");
        ab.merge(&a);
        ab.merge(&b);
        let mut ba = Summary::empty("2026-11", "2026-v2", "2026-v1", "r1");
        ba.merge(&b);
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.shards, ab.customers, ab.changed), (2, 5, 4));
        assert_eq!(ab.sum_delta, a.sum_delta + b.sum_delta);
        assert_eq!(ab.sum_new - ab.sum_old, ab.sum_delta);
        assert_eq!(ab.histogram.total(), 4);
        let top: Vec<&str> = ab.top.iter().map(|t| t.customer_id.as_str()).collect();
        assert_eq!(top, ["C3", "C1", "C4", "C5"]);
        let p = &ab.by_plan["5G_STANDARD"];
        assert_eq!((p.customers, p.changed, p.sum_delta), (5, 4, ab.sum_delta));
        assert_eq!(ab.inputs.snapshot, 2);
    }

    #[test]
    fn the_top_keeps_twenty() {
        let bills: Vec<(String, i64, i64)> = (0..30)
            .map(|i| (format!("C{i:02}"), 10_000, 10_000 + i * 100))
            .collect();
        let refs: Vec<(&str, i64, i64)> = bills.iter().map(|(c, o, n)| (c.as_str(), *o, *n)).collect();
        let s = shard(0, &refs);
        assert_eq!(s.top.len(), TOP);
        assert_eq!(s.top[0].customer_id, "C29");
        assert!(s.top.windows(2).all(|w| w[0].delta.abs() >= w[1].delta.abs()));
    }

    #[test]
    fn the_terminal_shows_the_figures() {
        let s = shard(0, &[("C1", 69_000, 66_000), ("C2", 33_000, 33_000)]);
        let text = render_terminal(&s);
        assert!(text.contains("1 of them changed"), "{text}");
        assert!(text.contains("Σ delta −3,300 won"), "{text}");
        assert!(text.contains("C1"), "{text}");
        assert_eq!(audit_line(&s), "re-priced with 2026-v2: 1 of 2 customers changed");
        assert_eq!(won(1_234_567, true), "+1,234,567");
        assert_eq!(won(-100, false), "−100");
    }
}
