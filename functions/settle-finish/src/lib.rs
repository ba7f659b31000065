//! `FinishCycle`: the reconciliation that decides whether a cycle is
//! settled.
//!
//! It does not trust the map's status (the local emulator does not even fail
//! a Distributed Map when a child fails): it checks that every shard of the
//! run's manifest is done with the pinned catalog version, that each shard
//! read as many customers as the shard directory lists and billed every
//! billable one, that the bills table holds exactly the recorded number of
//! bills per shard (so nobody is billed twice or left over from an older
//! run), that every shard's invoices are rendered — one delivery per bill,
//! rendered from the bills the shard recorded with the pinned template
//! version, and exactly that many items in the deliveries table — and
//! reconciles the money from the tables themselves, not from what the shards
//! reported: per done shard one `Query` of the bills table and one of the
//! deliveries table, each projecting customer id and total. The bills' sum
//! must equal the checksum settlement recorded, the sum of the bills the
//! render read and the sum its deliveries state; every delivery must state
//! its bill's total. Each mismatch is a reason naming the shard, the bill
//! count and the amounts. The cycle's checksum is the sum read from the bills
//! table. Then it marks the cycle `SETTLED`, or
//! `FAILED` with the reasons, with a write conditioned on this run still
//! owning the cycle (`SETTLING` or `FAILED`).
//!
//! **A failed reconciliation fails this task** (`CycleReconciliationFailed`,
//! after the `FAILED` record is written), not a later `Fail` state: a
//! redrive of the execution re-runs the states that did not exit — a `Fail`
//! state never exits, so a redrive that started there would only fail again.
//! Failing here, a redrive runs the failed map items and then this
//! reconciliation again, for the same run: a `FAILED` cycle owned by that run
//! is reconciled again and becomes `SETTLED` once its causes are fixed. A
//! cycle owned by another run is refused (`NotOwner`), and a `SETTLED` one
//! answers its settled reconciliation unchanged.
//!
//! Reasons are bounded: at most [`MAX_REASONS`] of at most
//! [`domain::text::MAX_REASON_BYTES`] each on the record, and the error
//! answered (and logged) is cut to the same size.

use std::collections::HashSet;

use adapters::bills::{BillStore, ShardAmounts, won};
use adapters::cycles::{CycleRecord, CycleStatus, CycleStore, ShardRecord, ShardStatus};
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use chrono::{SecondsFormat, Utc};
use domain::Cycle;
use domain::settlement::{FinishInput, FinishOutput, FinishStatus, ShardTask};
use domain::text::{MAX_ID_BYTES, check_id, reason};
use futures::{StreamExt, TryStreamExt, stream};
use lambda_runtime::LambdaEvent;

/// Reasons kept on the cycle record (the output says how many there were).
pub const MAX_REASONS: usize = 50;
/// Shards whose tables are read at once (two queries each: bills and deliveries).
pub const COUNT_CONCURRENCY: usize = 16;
/// Customers a delivery mismatch names (the count is exact).
pub const MAX_NAMED_CUSTOMERS: usize = 5;

pub struct Deps {
    pub cycles: CycleStore,
    pub bills: BillStore,
    pub deliveries: DeliveryStore,
    pub bucket: DataBucket,
}

impl Deps {
    /// Builds the dependencies from one SDK configuration and the function's
    /// variables (`CYCLES_TABLE`, `BILLS_TABLE`, `DELIVERIES_TABLE`, `DATA_BUCKET`).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        Ok(Deps {
            cycles: CycleStore::new(ddb.clone(), vars.required("CYCLES_TABLE")?),
            bills: BillStore::new(ddb.clone(), vars.required("BILLS_TABLE")?),
            deliveries: DeliveryStore::new(ddb, vars.required("DELIVERIES_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(
        "cycle {cycle} does not reconcile ({count} reasons, listed on the cycle record), first: {first}. \
         Fix the cause, then redrive this execution (the failed shards and this reconciliation run again) \
         or start a new one"
    )]
    NotReconciled { cycle: Cycle, count: usize, first: String },
    #[error("cycle {0} has not been begun")]
    UnknownCycle(Cycle),
    #[error("cycle {cycle} is {status:?} under run {owner}, not under this run")]
    NotOwner {
        cycle: Cycle,
        status: CycleStatus,
        owner: String,
    },
    #[error("the manifest s3://{bucket}/{key} is missing")]
    ManifestMissing { bucket: String, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for FinishError {
    fn error_type(&self) -> &'static str {
        match self {
            FinishError::InvalidInput(_) => "InvalidInput",
            FinishError::NotReconciled { .. } => "CycleReconciliationFailed",
            FinishError::UnknownCycle(_) => "UnknownCycle",
            FinishError::NotOwner { .. } => "NotOwner",
            FinishError::ManifestMissing { .. } => "ManifestMissing",
            FinishError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(FinishError);

fn output(r: &CycleRecord, status: FinishStatus) -> FinishOutput {
    FinishOutput {
        cycle: r.cycle,
        run_id: r.run_id.clone(),
        status,
        shards: r.shard_count,
        shards_done: r.shards_done,
        customers: r.customers,
        bills: r.bills,
        not_billable: r.not_billable,
        checksum: r.checksum,
        reasons: r.reasons.clone(),
    }
}

/// Why a settled shard's rendering does not reconcile, if it does not.
fn render_problem(s: &ShardRecord, template_version: &str) -> Option<String> {
    let Some(r) = &s.render else {
        return Some("invoices not rendered".into());
    };
    if r.bills_digest != s.digest {
        Some(format!(
            "invoices were rendered from other bills (Σ {}) than the {} bills settled (Σ {})",
            r.bills_total.map_or_else(|| "?".into(), won),
            s.bills,
            won(s.checksum)
        ))
    } else if r.template_version != template_version {
        Some(format!(
            "invoices rendered with template {} but the cycle pins {template_version}",
            r.template_version
        ))
    } else if r.deliveries != s.bills {
        Some(format!("{} deliveries for {} bills", r.deliveries, s.bills))
    } else {
        None
    }
}

/// Every way a done shard's money does not reconcile, each reason naming the shard, the bill
/// count and the amounts: the bills table (`bills`, as read) against the settlement
/// (`ShardRecord::bills`, `checksum`) and the render (`bills_total`, `rendered_total`), and
/// the deliveries table (`deliveries`) against the bills, customer by customer.
pub fn money_problems(shard: u32, s: &ShardRecord, bills: &ShardAmounts, deliveries: &ShardAmounts) -> Vec<String> {
    let mut out = Vec::new();
    let (count, sum) = (bills.count(), bills.sum());
    let table = format!("the bills table holds {count} bills, Σ {}", won(sum));
    if let Some(first) = bills.unreadable.first() {
        out.push(format!(
            "shard {shard}: {} of {count} bills have no readable total, first: customer {first}",
            bills.unreadable.len()
        ));
    }
    if count != s.bills || sum != s.checksum {
        out.push(format!(
            "shard {shard}: {table}; the shard settled {} bills, Σ {}",
            s.bills,
            won(s.checksum)
        ));
    }
    if let Some(r) = &s.render {
        // Renders recorded before they recorded money have no sums: the tables still reconcile.
        let read = r.bills_total.is_some_and(|t| t != sum);
        let stated = r.rendered_total.is_some_and(|t| t != sum);
        if read || stated {
            out.push(format!(
                "shard {shard}: {table}; the render read bills Σ {} and its deliveries state Σ {}",
                r.bills_total.map_or_else(|| "?".into(), won),
                r.rendered_total.map_or_else(|| "?".into(), won),
            ));
        }
    }
    let differ = deliveries.differences(bills, MAX_NAMED_CUSTOMERS);
    if !differ.is_empty() || !deliveries.unreadable.is_empty() {
        let named: Vec<String> = deliveries
            .unreadable
            .iter()
            .map(|c| format!("customer {c} (delivery total unreadable)"))
            .chain(differ.iter().map(|(c, d, b)| {
                let amount = |a: &Option<i64>, what: &str| {
                    a.map_or_else(|| format!("no {what}"), |t| format!("{what} {}", won(t)))
                };
                format!("customer {c} ({}, {})", amount(d, "delivery"), amount(b, "bill"))
            }))
            .take(MAX_NAMED_CUSTOMERS)
            .collect();
        out.push(format!(
            "shard {shard}: the deliveries table holds {} deliveries, Σ {}, for {count} bills, Σ {}; first: {}",
            deliveries.count(),
            won(deliveries.sum()),
            won(sum),
            named.join(", ")
        ));
    }
    out
}

#[tracing::instrument(skip_all, fields(cycle = %event.payload.cycle))]
pub async fn handle(deps: &Deps, event: LambdaEvent<FinishInput>) -> Result<FinishOutput, FinishError> {
    let FinishInput { cycle, run_id } = event.payload;
    check_id("run_id", &run_id, MAX_ID_BYTES).map_err(|e| FinishError::InvalidInput(e.to_string()))?;
    let rec = deps.cycles.get(cycle).await?.ok_or(FinishError::UnknownCycle(cycle))?;
    if rec.run_id != run_id {
        return Err(not_owner(cycle, &rec));
    }
    match rec.status {
        // A retry of a finish that already went through: same answer.
        CycleStatus::Settled => return Ok(output(&rec, FinishStatus::Settled)),
        // This run's own cycle failed reconciliation before: a redrive (or a
        // retry) reconciles it again.
        CycleStatus::Failed | CycleStatus::Settling => {}
    }
    let manifest: Vec<ShardTask> =
        deps.bucket
            .get_json(&rec.manifest_key)
            .await?
            .ok_or_else(|| FinishError::ManifestMissing {
                bucket: deps.bucket.bucket().to_owned(),
                key: rec.manifest_key.clone(),
            })?;
    let shards = deps.cycles.shards(cycle).await?;

    let mut reasons = Vec::new();
    let (mut customers, mut bills, mut not_billable, mut checksum, mut done) = (0u64, 0u64, 0u64, 0i64, 0u32);
    let in_manifest: HashSet<u32> = manifest.iter().map(|t| t.shard).collect();
    let mut to_count = Vec::new();
    for task in &manifest {
        let Some(s) = shards.get(&task.shard) else {
            reasons.push(format!("shard {}: not settled", task.shard));
            continue;
        };
        match s.status {
            ShardStatus::Done if s.catalog_version != rec.catalog_version => reasons.push(format!(
                "shard {}: settled with catalog {} but the cycle pins {}",
                task.shard, s.catalog_version, rec.catalog_version
            )),
            ShardStatus::Done => {
                if s.customers != task.expected_customers {
                    reasons.push(format!(
                        "shard {}: read {} customers, the directory lists {}",
                        task.shard, s.customers, task.expected_customers
                    ));
                } else if s.bills + s.not_billable != s.customers {
                    reasons.push(format!(
                        "shard {}: {} bills + {} not billable != {} customers",
                        task.shard, s.bills, s.not_billable, s.customers
                    ));
                } else if let Some(why) = render_problem(s, &rec.template_version) {
                    reasons.push(format!("shard {}: {why}", task.shard));
                } else {
                    done += 1;
                    customers += s.customers;
                    not_billable += s.not_billable;
                    to_count.push((task.shard, s.clone()));
                }
            }
            ShardStatus::InProgress => reasons.push(format!("shard {}: still in progress", task.shard)),
            ShardStatus::Failed => reasons.push(format!(
                "shard {}: failed with {} errors: {}",
                task.shard,
                s.error_count,
                s.errors.first().map_or("(none recorded)", String::as_str)
            )),
        }
    }
    let mut strays: Vec<u32> = shards.keys().filter(|s| !in_manifest.contains(s)).copied().collect();
    strays.sort_unstable();
    for s in strays {
        reasons.push(format!("shard {s}: has a record but is not in this run's manifest"));
    }
    // The money, from the tables: every done shard's bills and deliveries, read back.
    let mut read: Vec<(u32, Vec<String>, u64, i64)> = stream::iter(to_count)
        .map(|(shard, s)| async move {
            let (bills, deliveries) =
                tokio::try_join!(deps.bills.totals(cycle, shard), deps.deliveries.totals(cycle, shard))?;
            let problems = money_problems(shard, &s, &bills, &deliveries);
            Ok::<_, StoreError>((shard, problems, bills.count(), bills.sum()))
        })
        .buffer_unordered(COUNT_CONCURRENCY)
        .try_collect()
        .await?;
    read.sort_unstable_by_key(|(shard, ..)| *shard);
    // The cycle's counts and checksum are the tables' (equal to the shards' when it settles).
    for (_, problems, count, sum) in read {
        bills += count;
        checksum = checksum.saturating_add(sum);
        if !problems.is_empty() {
            done -= 1;
            reasons.extend(problems);
        }
    }

    let status = if reasons.is_empty() {
        CycleStatus::Settled
    } else {
        CycleStatus::Failed
    };
    let total_reasons = reasons.len();
    if total_reasons > MAX_REASONS {
        reasons.truncate(MAX_REASONS);
        reasons.push(format!("… and {} more", total_reasons - MAX_REASONS));
    }
    for r in &mut reasons {
        if r.len() > domain::text::MAX_REASON_BYTES {
            *r = reason(r);
        }
    }
    let finished = CycleRecord {
        status,
        finished_at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        shards_done: done,
        customers,
        bills,
        not_billable,
        checksum,
        reasons,
        ..rec
    };
    if !deps.cycles.finish(&finished).await? {
        let now = deps.cycles.get(cycle).await?.ok_or(FinishError::UnknownCycle(cycle))?;
        // Our own write, applied, whose answer was lost (the SDK's retry was
        // refused by the condition it had just made false): it is ours.
        let ours =
            now.run_id == finished.run_id && now.status == finished.status && now.finished_at == finished.finished_at;
        if !ours {
            return Err(not_owner(cycle, &now));
        }
    }
    tracing::info!(?status, bills, checksum, reasons = total_reasons, "cycle reconciled");
    if status == CycleStatus::Settled {
        Ok(output(&finished, FinishStatus::Settled))
    } else {
        Err(FinishError::NotReconciled {
            cycle,
            count: total_reasons,
            first: finished.reasons.first().cloned().unwrap_or_default(),
        })
    }
}

fn not_owner(cycle: Cycle, rec: &CycleRecord) -> FinishError {
    FinishError::NotOwner {
        cycle,
        status: rec.status,
        owner: domain::text::bounded(&rec.run_id, MAX_ID_BYTES).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use adapters::cycles::RenderRecord;

    use super::*;

    fn amounts(rows: &[(&str, i64)]) -> ShardAmounts {
        ShardAmounts {
            amounts: rows.iter().map(|(c, t)| ((*c).to_owned(), *t)).collect(),
            unreadable: Vec::new(),
        }
    }

    /// A done shard of three bills (10,000 + 20,000 + 30,000 won), rendered.
    fn shard() -> (ShardRecord, ShardAmounts) {
        let bills = amounts(&[("C1", 10_000), ("C2", 20_000), ("C3", 30_000)]);
        let s = ShardRecord {
            shard: 3,
            status: ShardStatus::Done,
            run_id: "run".into(),
            catalog_version: "2026-v1".into(),
            cursor: None,
            customers: 3,
            bills: 3,
            not_billable: 0,
            usage_lines: 0,
            checksum: 60_000,
            digest: "d".into(),
            error_count: 0,
            errors: Vec::new(),
            attempts: 1,
            updated_at: String::new(),
            suspense: None,
            render: Some(RenderRecord {
                template_version: "v1".into(),
                bills_digest: "d".into(),
                bills_total: Some(60_000),
                rendered_total: Some(60_000),
                deliveries: 3,
                ..RenderRecord::default()
            }),
        };
        (s, bills)
    }

    #[test]
    fn equal_money_reconciles() {
        let (s, bills) = shard();
        assert!(money_problems(3, &s, &bills, &bills.clone()).is_empty());
        assert_eq!(render_problem(&s, "v1"), None);
    }

    #[test]
    fn a_bill_changed_in_the_table_is_named_with_count_and_amounts() {
        let (s, _) = shard();
        let bills = amounts(&[("C1", 10_000), ("C2", 25_000), ("C3", 30_000)]);
        let deliveries = amounts(&[("C1", 10_000), ("C2", 20_000), ("C3", 30_000)]);
        let p = money_problems(3, &s, &bills, &deliveries);
        assert_eq!(
            p,
            vec![
                "shard 3: the bills table holds 3 bills, Σ 65,000 won; the shard settled 3 bills, Σ 60,000 won",
                "shard 3: the bills table holds 3 bills, Σ 65,000 won; the render read bills Σ 60,000 won \
                 and its deliveries state Σ 60,000 won",
                "shard 3: the deliveries table holds 3 deliveries, Σ 60,000 won, for 3 bills, Σ 65,000 won; \
                 first: customer C2 (delivery 20,000 won, bill 25,000 won)",
            ]
        );
    }

    #[test]
    fn a_delivery_changed_or_missing_is_named() {
        let (s, bills) = shard();
        let deliveries = amounts(&[("C1", 10_000), ("C2", 20_001)]);
        assert_eq!(
            money_problems(3, &s, &bills, &deliveries),
            vec![
                "shard 3: the deliveries table holds 2 deliveries, Σ 30,001 won, for 3 bills, Σ 60,000 won; \
                 first: customer C2 (delivery 20,001 won, bill 20,000 won), customer C3 (no delivery, bill 30,000 won)"
            ]
        );
        // Equal sums do not hide two deliveries that swapped amounts.
        let swapped = amounts(&[("C1", 20_000), ("C2", 10_000), ("C3", 30_000)]);
        let p = money_problems(3, &s, &bills, &swapped);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("Σ 60,000 won, for 3 bills, Σ 60,000 won"), "{}", p[0]);
        assert!(
            p[0].contains("customer C1 (delivery 20,000 won, bill 10,000 won)"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn a_render_that_stated_other_totals_is_named() {
        let (mut s, bills) = shard();
        if let Some(r) = s.render.as_mut() {
            r.rendered_total = Some(59_000);
        }
        assert_eq!(
            money_problems(3, &s, &bills, &bills.clone()),
            vec![
                "shard 3: the bills table holds 3 bills, Σ 60,000 won; the render read bills Σ 60,000 won \
                 and its deliveries state Σ 59,000 won"
            ]
        );
        // A render recorded before renders kept sums: the tables alone decide.
        if let Some(r) = s.render.as_mut() {
            (r.bills_total, r.rendered_total) = (None, None);
        }
        assert!(money_problems(3, &s, &bills, &bills.clone()).is_empty());
    }

    #[test]
    fn unreadable_totals_are_problems() {
        let (s, bills) = shard();
        let mut broken = bills.clone();
        let (c, _) = broken.amounts.remove(1);
        broken.unreadable.push(c);
        let p = money_problems(3, &s, &broken, &bills);
        assert!(
            p[0].starts_with("shard 3: 1 of 3 bills have no readable total, first: customer C2"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|r| r.contains("Σ 40,000 won; the shard settled 3 bills, Σ 60,000 won")),
            "{p:?}"
        );
        let p = money_problems(3, &s, &bills, &broken);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("customer C2 (delivery total unreadable)"), "{p:?}");
    }

    #[test]
    fn other_bills_rendered_are_named_with_amounts() {
        let (mut s, _) = shard();
        if let Some(r) = s.render.as_mut() {
            (r.bills_digest, r.bills_total) = ("other".into(), Some(61_000));
        }
        assert_eq!(
            render_problem(&s, "v1").as_deref(),
            Some("invoices were rendered from other bills (Σ 61,000 won) than the 3 bills settled (Σ 60,000 won)")
        );
    }
}
