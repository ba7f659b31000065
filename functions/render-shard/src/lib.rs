//! `RenderShard`: the second step of a settlement map item. Renders every
//! bill of a settled shard into an HTML email invoice (gzip, uploaded to S3)
//! and an SMS text, and records one `READY` delivery per bill.
//!
//! * **One object per shard:** the invoices a render writes go into one
//!   invoice pack, each its own gzip member, uploaded with one `PutObject`
//!   before any delivery points at it; each delivery states the pack's key and
//!   its byte range (`email_key`, `email_range`), read back with a ranged
//!   `GET`. One `PUT` per shard instead of one per invoice: S3's request fee
//!   was most of rendering's cost (`docs/invoices.md#invoice-packs`).
//! * **Deterministic:** the pack's name is a function of its bytes, and the
//!   content hash is a function of the bill, the masked contact data and the
//!   template. The same inputs give the same bytes and the same key, so a
//!   repeated render rewrites a pack with identical bytes and never changes
//!   one a delivery points at.
//! * **Idempotent and cheap to repeat:** the shard's existing deliveries are
//!   read first (one `Query`); a delivery whose content hash equals the new
//!   one costs nothing — no upload, no write. A `READY` delivery whose bill
//!   changed (a re-settled shard) gets its content replaced, conditioned on
//!   still being `READY` with the content read, and keeps its state,
//!   attempts and `available_at`. A delivery that moved on (queued, sent,
//!   dead, ...) is never touched.
//! * **Email hash:** every delivery holds the keyed look-up hash of its
//!   customer's email (`email_hash`, never the address), which dispatch checks
//!   against the suppression list; a waiting delivery whose customer's email
//!   changed gets the new hash on the next render (without a new upload when
//!   its content is the same).
//! * **Resumable:** near the invocation's deadline the render stops between
//!   chunks and returns the retryable `RenderIncomplete`; the retry skips
//!   what is already there.
//! * **Strict:** a bill without its customer, contact data that does not
//!   open, or a render error fails the shard with the customer ids named
//!   (never a personal value), before anything is uploaded.
//! * **Reconciled:** the bills read are hashed again ([`shard_digest`]) and
//!   summed; unless they are exactly the bills settled (count and digest of
//!   the shard record) the shard fails with `BillsChanged`, naming the shard,
//!   the bill counts and the sums, before anything is uploaded. Every
//!   delivery states its bill's total: a waiting one whose stored total
//!   differs is rewritten with its bill, and one that moved on (its invoice
//!   sent or on its way) with another total than its bill's fails the shard
//!   the same way. The render record keeps the digest computed, the sum of
//!   the bills read and the sum of the totals the deliveries state, which
//!   `FinishCycle` checks against the tables.
//! * **Bounded:** rendering runs on one blocking thread with one reused
//!   compressor; uploads and writes run `concurrency` at a time. The task's
//!   identifiers are refused beyond [`domain::text::MAX_ID_BYTES`], error
//!   texts are cut to [`domain::text::MAX_REASON_BYTES`].
//! * **Gated:** only the run that owns the cycle, while it is `SETTLING` or
//!   `FAILED` (its own redrive), renders: a stray or replayed task of another
//!   run, or any task once the month is `SETTLED`, is refused with
//!   `NotOwner` before it uploads or writes anything. The gate is read
//!   (consistently) at the start and before every chunk of uploads and
//!   delivery writes, and the render record is written in one transaction
//!   with it; the same argument as `settle_shard`'s shows that the one chunk
//!   in flight when the cycle changes hands cannot reach a settled month's
//!   deliveries: nothing of a cycle is dispatched before a `FinishCycle`
//!   that read this shard's render record settles it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use adapters::PutOutcome;
use adapters::bills::{BillStore, shard_digest, won};
use adapters::customers::CustomerStore;
use adapters::cycles::{CycleStore, Gated, NotOwned, RenderRecord, ShardRecord, ShardStatus};
use adapters::data_bucket::{DataBucket, pack_key, pack_name, sha256_hex};
use adapters::deadline::pause_point;
use adapters::deliveries::{DeliveryStore, Existing, UpdateOutcome};
use adapters::keyring::PiiKeys;
use adapters::{ConfigError, StoreError, Vars};
use aws_config::SdkConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::pii::{Field, Keyring};
use domain::settlement::{RenderResult, ShardTask};
use domain::text::{MAX_ID_BYTES, check_id, check_len, reason};
use domain::{Bill, Customer, Delivery, DeliveryContent};
use futures::{StreamExt, TryStreamExt, stream};
use invoice::{Gzip, Templates};
use lambda_runtime::LambdaEvent;

/// How many problems a failed render names (the count is exact).
pub const MAX_REPORTED_ERRORS: usize = 20;

pub struct Config {
    /// Uploads and delivery writes in flight.
    pub concurrency: usize,
    /// Stop this long before the invocation's deadline: more than one AWS
    /// call may take ([`adapters::SDK_OPERATION_TIMEOUT`]), so that no call
    /// started before the pause outlives the invocation.
    pub deadline_margin: Duration,
    /// Invoices uploaded between two deadline checks.
    pub chunk: usize,
    /// gzip level of the HTML invoices (see BENCHMARKS.md).
    pub gzip_level: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: 16,
            deadline_margin: adapters::SDK_OPERATION_TIMEOUT + Duration::from_secs(5),
            chunk: 200,
            gzip_level: invoice::DEFAULT_GZIP_LEVEL,
        }
    }
}

pub struct Deps {
    pub customers: CustomerStore,
    pub bills: BillStore,
    pub deliveries: DeliveryStore,
    pub cycles: CycleStore,
    pub bucket: DataBucket,
    /// The contact-data keyring, from the secret named by `PII_KEYS_SECRET`.
    pub keys: PiiKeys,
    pub templates: Arc<Templates>,
    pub config: Config,
}

impl Deps {
    /// Builds the dependencies from one SDK configuration and the function's
    /// variables (`CUSTOMERS_TABLE`, `BILLS_TABLE`, `DELIVERIES_TABLE`,
    /// `CYCLES_TABLE`, `DATA_BUCKET`, `PII_KEYS_SECRET` (the keyring's
    /// secret, fetched here), optional `RENDER_CONCURRENCY`). The embedded
    /// templates are loaded and validated here, at cold start: an invalid
    /// version stops the function before it renders anything.
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, RenderError> {
        let ddb = adapters::dynamodb_client(sdk);
        let keys = PiiKeys::load(sdk, vars).await?;
        let config = Config {
            concurrency: vars.parsed("RENDER_CONCURRENCY", Config::default().concurrency)?,
            ..Config::default()
        };
        Ok(Deps {
            customers: CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            bills: BillStore::new(ddb.clone(), vars.required("BILLS_TABLE")?),
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            cycles: CycleStore::new(ddb, vars.required("CYCLES_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            keys,
            templates: Arc::new(Templates::embedded().map_err(|e| RenderError::Template(e.to_string()))?),
            config,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stray or replayed task: the cycle is not this run's to write.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    #[error("invoice templates: {0}")]
    Template(String),
    #[error("shard {shard}: {why}; render runs after the shard is settled")]
    NotSettled { shard: u32, why: String },
    #[error("shard {shard}: {message}")]
    BadInput { shard: u32, message: String },
    /// The bills read are not the bills settled, or a delivery that moved on states another
    /// total than its bill.
    #[error("shard {shard}: {message}")]
    BillsChanged { shard: u32, message: String },
    #[error("shard {shard}: rendered {done} of {total} invoices before the deadline; the retry continues")]
    Incomplete { shard: u32, done: usize, total: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl runtime::ErrorType for RenderError {
    fn error_type(&self) -> &'static str {
        match self {
            RenderError::Config(_) => "ConfigError",
            RenderError::InvalidInput(_) => "InvalidInput",
            RenderError::NotOwned(_) => "NotOwner",
            RenderError::Template(_) => "TemplateInvalid",
            RenderError::NotSettled { .. } => "ShardNotSettled",
            RenderError::BadInput { .. } => "ShardInputInvalid",
            RenderError::BillsChanged { .. } => "BillsChanged",
            RenderError::Incomplete { .. } => "RenderIncomplete",
            RenderError::Store(s) => runtime::store_error_type(s),
        }
    }
}

runtime::diagnostic_from!(RenderError);

/// Refuses a task whose identifiers are over-long, naming the field.
fn check_task(task: &ShardTask) -> Result<(), RenderError> {
    for (field, value) in [
        ("run_id", &task.run_id),
        ("catalog_version", &task.catalog_version),
        ("template_version", &task.template_version),
    ] {
        check_len(field, value, MAX_ID_BYTES).map_err(|e| RenderError::InvalidInput(e.to_string()))?;
    }
    if task.run_id.trim().is_empty() {
        return Err(RenderError::InvalidInput("run_id is empty".into()));
    }
    check_id("run_id", &task.run_id, MAX_ID_BYTES).map_err(|e| RenderError::InvalidInput(e.to_string()))?;
    Ok(())
}

fn refused(n: NotOwned) -> RenderError {
    tracing::warn!(status = ?n.status, "refused: the cycle is not this run's to write");
    RenderError::NotOwned(n)
}

/// The gate, read: this run may still write the cycle.
async fn check_gate(deps: &Deps, task: &ShardTask) -> Result<(), RenderError> {
    deps.cycles
        .owned_by(task.cycle, &task.run_id)
        .await?
        .map(drop)
        .map_err(refused)
}

/// What one bill needs after rendering.
enum Work {
    Create {
        delivery: Box<Delivery>,
        body: Members,
    },
    /// A waiting delivery whose content, total or email hash changed: `body` is the new
    /// invoice (`None`: the content is the same, only the email hash or the total is new; the
    /// delivery keeps the invoice it points at).
    Update {
        delivery: Box<Delivery>,
        old_hash: String,
        body: Option<Members>,
        /// The new email hash, when it differs from the stored one.
        email_hash: Option<String>,
    },
}

/// A bill's members of the pack, each a complete gzip member: the HTML invoice and the SMS
/// text (with its link placeholder).
#[derive(Default)]
struct Members {
    html: Vec<u8>,
    sms: Vec<u8>,
}

/// The invoices of a render, packed: the object's bytes and key.
struct Pack {
    key: String,
    bytes: Vec<u8>,
    /// SHA-256 over the bytes, hex (the object's `content-sha256`).
    hash: String,
}

/// Moves every new invoice body of `work` into one pack (each bill's HTML then its SMS text, in
/// work order) and points each delivery at its members. `None` when no invoice is new.
fn pack(cycle: domain::Cycle, shard: u32, version: &str, work: &mut [Work]) -> Result<Option<Pack>, String> {
    let mut bytes = Vec::new();
    let mut placed = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let body = match w {
            Work::Create { body, .. } => std::mem::take(body),
            Work::Update { body, .. } => match body.take() {
                Some(b) => b,
                None => continue,
            },
        };
        let customer = &w.delivery().customer_id;
        let mut member = |part: &[u8], what: &str| {
            let range = domain::range::ByteRange::new(bytes.len() as u64, part.len() as u64)
                .map_err(|e| format!("customer {customer}: {what} of no bytes: {e}"))?;
            bytes.extend_from_slice(part);
            Ok::<_, String>(range)
        };
        let html = member(&body.html, "invoice")?;
        let sms = member(&body.sms, "SMS text")?;
        placed.push((i, html, sms));
    }
    if placed.is_empty() {
        return Ok(None);
    }
    let hash = sha256_hex(&bytes);
    let key = pack_key(cycle, shard, &pack_name(version, &hash));
    for (i, html, sms) in placed {
        let content = match &mut work[i] {
            Work::Create { delivery, .. } | Work::Update { delivery, .. } => &mut delivery.content,
        };
        content.email_key = key.clone();
        content.email_range = Some(html);
        content.sms_range = Some(sms);
        content.sms_text.clear();
    }
    Ok(Some(Pack { key, bytes, hash }))
}

impl Work {
    fn delivery(&self) -> &Delivery {
        match self {
            Work::Create { delivery, .. } | Work::Update { delivery, .. } => delivery,
        }
    }
}

#[derive(Default)]
struct Plan {
    work: Vec<Work>,
    unchanged: u64,
    kept: u64,
    /// Σ of the totals the shard's deliveries state once the work is done, in won.
    rendered_total: i64,
}

/// The bills a render read, as reconciliation sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BillsRead {
    digest: String,
    total: i64,
}

/// Checks that `bills` (as read, in customer-id order) are the bills the shard record says
/// were settled: the same count and the same digest. The error names the shard, both counts
/// and both sums.
fn check_bills(shard: u32, settled: &ShardRecord, bills: &[Bill]) -> Result<BillsRead, RenderError> {
    let read = BillsRead {
        digest: shard_digest(bills),
        total: bills.iter().map(|b| b.total).sum::<domain::Krw>().won(),
    };
    if bills.len() as u64 == settled.bills && read.digest == settled.digest {
        return Ok(read);
    }
    Err(RenderError::BillsChanged {
        shard,
        message: format!(
            "the bills read ({} bills, Σ {}) are not the bills settled ({} bills, Σ {}); \
             settle the shard again before rendering it",
            bills.len(),
            won(read.total),
            settled.bills,
            won(settled.checksum)
        ),
    })
}

/// Deliveries past waiting (queued, sent, dead, ...) that render no longer touches, whose
/// stored total is not their bill's: customer id, stored total (`None`: unreadable), bill's
/// total, in customer-id order.
fn kept_disagreements(bills: &[Bill], existing: &[Existing]) -> Vec<(String, Option<i64>, i64)> {
    let existing: HashMap<&str, &Existing> = existing.iter().map(|e| (e.customer_id.as_str(), e)).collect();
    bills
        .iter()
        .filter_map(|b| {
            let e = existing.get(b.customer_id.as_str())?;
            (!e.is_waiting() && e.total != Some(b.total.won()))
                .then(|| (b.customer_id.to_string(), e.total, b.total.won()))
        })
        .collect()
}

/// The `BillsChanged` error for deliveries that moved on with other totals than their bills.
fn kept_error(shard: u32, bills: usize, wrong: &[(String, Option<i64>, i64)]) -> RenderError {
    let stored = wrong
        .iter()
        .fold(0i64, |acc, (_, t, _)| acc.saturating_add(t.unwrap_or(0)));
    let billed = wrong.iter().fold(0i64, |acc, (_, _, b)| acc.saturating_add(*b));
    let first: Vec<String> = wrong
        .iter()
        .take(5)
        .map(|(c, t, b)| {
            let t = t.map_or_else(|| "unreadable".to_owned(), won);
            format!("customer {c} (delivery {t}, bill {})", won(*b))
        })
        .collect();
    RenderError::BillsChanged {
        shard,
        message: reason(&format!(
            "{} of {bills} bills state other totals than their deliveries already sent or on their way \
             (deliveries Σ {}, bills Σ {}), first: {}",
            wrong.len(),
            won(stored),
            won(billed),
            first.join(", ")
        )),
    }
}

#[derive(Copy, Clone, Default)]
struct Applied {
    created: u64,
    updated: u64,
    /// Lost a race to another writer or the delivery moved on meanwhile.
    kept: u64,
    bytes: u64,
}

#[tracing::instrument(skip_all, fields(cycle = %event.payload.cycle, shard = event.payload.shard))]
pub async fn handle(deps: &Deps, event: LambdaEvent<ShardTask>) -> Result<RenderResult, RenderError> {
    let (task, ctx) = event.into_parts();
    let stop_at = pause_point(ctx.deadline(), SystemTime::now(), deps.config.deadline_margin);
    let (cycle, shard) = (task.cycle, task.shard);
    check_task(&task)?;
    check_gate(deps, &task).await?;
    if deps.templates.version(&task.template_version).is_err() {
        return Err(RenderError::Template(format!(
            "template version {:?} is not one of {}",
            task.template_version,
            deps.templates.versions().collect::<Vec<_>>().join(", ")
        )));
    }

    let record = deps.cycles.get_shard(cycle, shard).await?;
    let record = match record {
        Some(r) if r.status == ShardStatus::Done && r.catalog_version == task.catalog_version => r,
        Some(r) => {
            return Err(RenderError::NotSettled {
                shard,
                why: format!("its record is {:?} with catalog {}", r.status, r.catalog_version),
            });
        }
        None => {
            return Err(RenderError::NotSettled {
                shard,
                why: "it has no settlement record".into(),
            });
        }
    };

    let (bills, customers, existing) = tokio::try_join!(
        deps.bills.shard(cycle, shard),
        deps.customers.shard(shard),
        deps.deliveries.shard_summary(cycle, shard)
    )?;
    let read = check_bills(shard, &record, &bills)?;
    let wrong = kept_disagreements(&bills, &existing);
    if !wrong.is_empty() {
        return Err(kept_error(shard, bills.len(), &wrong));
    }
    if let Some(first) = customers.errors.first() {
        return Err(RenderError::BadInput {
            shard,
            message: reason(&format!(
                "{} customer records cannot be read, first: {first}",
                customers.errors.len()
            )),
        });
    }

    // Rendering and compression are CPU work: one blocking thread, one
    // reused compressor for the whole shard.
    let total = bills.len();
    let templates = deps.templates.clone();
    // The keyring that holds every key this shard's contact data is sealed under (fetched
    // again if the cached one lacks one: a key added since the cold start).
    let keys = deps
        .keys
        .for_contacts(customers.customers.iter().map(|c| &c.contact))
        .await?;
    let version = task.template_version.clone();
    let level = deps.config.gzip_level;
    let now = Utc::now();
    let plan = tokio::task::spawn_blocking(move || {
        plan(
            &templates,
            &keys,
            &version,
            level,
            bills,
            customers.customers,
            existing,
            now,
        )
    })
    .await
    .map_err(|e| RenderError::BadInput {
        shard,
        message: format!("render worker failed: {e}"),
    })?
    .map_err(|message| RenderError::BadInput {
        shard,
        message: reason(&message),
    })?;

    let mut applied = Applied::default();
    let mut work = plan.work;
    let pack = pack(cycle, shard, &task.template_version, &mut work).map_err(|message| RenderError::BadInput {
        shard,
        message: reason(&message),
    })?;
    if let Some(pack) = pack {
        // The pack exists before any delivery points at it.
        check_gate(deps, &task).await?;
        applied.bytes = pack.bytes.len() as u64;
        deps.bucket.put_invoice(&pack.key, pack.bytes, &pack.hash).await?;
    }
    let mut done = plan.unchanged as usize + plan.kept as usize;
    let mut work = work.into_iter().peekable();
    while work.peek().is_some() {
        check_gate(deps, &task).await?;
        let chunk: Vec<Work> = work.by_ref().take(deps.config.chunk.max(1)).collect();
        let n = chunk.len();
        let got = stream::iter(chunk)
            .map(|w| apply(deps, w, now))
            .buffer_unordered(deps.config.concurrency.max(1))
            .try_fold(Applied::default(), |mut acc, a| async move {
                acc.created += a.created;
                acc.updated += a.updated;
                acc.kept += a.kept;
                acc.bytes += a.bytes;
                Ok(acc)
            })
            .await?;
        applied.created += got.created;
        applied.updated += got.updated;
        applied.kept += got.kept;
        applied.bytes += got.bytes;
        done += n;
        if work.peek().is_some() && stop_at.is_some_and(|t| SystemTime::now() >= t) {
            tracing::info!(done, total, "deadline near: render paused");
            return Err(RenderError::Incomplete { shard, done, total });
        }
    }

    let render = RenderRecord {
        template_version: task.template_version.clone(),
        bills_digest: read.digest,
        bills_total: Some(read.total),
        rendered_total: Some(plan.rendered_total),
        deliveries: total as u64,
        created: applied.created,
        updated: applied.updated,
        unchanged: plan.unchanged,
        kept: plan.kept + applied.kept,
        bytes_uploaded: applied.bytes,
        rendered_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    match deps.cycles.put_render(cycle, &task.run_id, shard, &render).await? {
        Gated::Applied => {}
        Gated::NotOwned(n) => return Err(refused(n)),
        Gated::Stale => {
            return Err(RenderError::NotSettled {
                shard,
                why: "its bills were settled again while it rendered".into(),
            });
        }
    }
    tracing::info!(
        created = render.created,
        updated = render.updated,
        unchanged = render.unchanged,
        kept = render.kept,
        bytes = render.bytes_uploaded,
        "shard rendered"
    );
    Ok(RenderResult {
        cycle,
        shard,
        template_version: render.template_version,
        deliveries: render.deliveries,
        created: render.created,
        updated: render.updated,
        unchanged: render.unchanged,
        kept: render.kept,
        bytes_uploaded: render.bytes_uploaded,
    })
}

/// Renders every bill and decides what each needs. Returns the first
/// problems (customer ids only) if any bill cannot be rendered.
#[allow(clippy::too_many_arguments)]
fn plan(
    templates: &Templates,
    keys: &Keyring,
    version: &str,
    gzip_level: u32,
    bills: Vec<Bill>,
    customers: Vec<Customer>,
    existing: Vec<Existing>,
    now: DateTime<Utc>,
) -> Result<Plan, String> {
    let renderer = templates.version(version).map_err(|e| e.to_string())?;
    let customers: HashMap<&str, &Customer> = customers.iter().map(|c| (c.customer_id.as_str(), c)).collect();
    let existing: HashMap<&str, &Existing> = existing.iter().map(|e| (e.customer_id.as_str(), e)).collect();
    let mut gzip = Gzip::new(gzip_level);
    let mut out = Plan::default();
    let mut errors = Vec::new();
    let mut error_count = 0usize;
    for bill in bills {
        let id = bill.customer_id.clone();
        let before = existing.get(id.as_str()).copied();
        if let Some(e) = before.filter(|e| !e.is_waiting()) {
            // Its total was checked equal to the bill's before planning.
            out.kept += 1;
            out.rendered_total = out.rendered_total.saturating_add(e.total.unwrap_or_default());
            continue;
        }
        let rendered = customers
            .get(id.as_str())
            .ok_or_else(|| format!("customer {id}: has a bill but no customer record"))
            .and_then(|c| {
                let contact = c
                    .contact
                    .open(keys, &c.customer_id)
                    .map_err(|e| format!("customer {id}: contact data does not open: {e}"))?;
                let rendered = renderer
                    .render_bill(&bill, &contact.name, &contact.phone)
                    .map_err(|e| format!("customer {id}: {e}"))?;
                // What dispatch checks against the suppression list without opening the contact.
                let email_hash = keys.lookup_hash(Field::Email, contact.email.expose());
                Ok((c, rendered, email_hash))
            });
        let (customer, rendered, email_hash) = match rendered {
            Ok(x) => x,
            Err(message) => {
                error_count += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(reason(&message));
                }
                continue;
            }
        };
        let same_content = before.is_some_and(|e| e.content_hash == rendered.content_hash);
        let new_email_hash = before
            .filter(|e| e.email_hash.as_deref() != Some(email_hash.as_str()))
            .map(|_| email_hash.clone());
        let same_total = before.is_some_and(|e| e.total == Some(bill.total.won()));
        if same_content && new_email_hash.is_none() && same_total {
            out.unchanged += 1;
            out.rendered_total = out.rendered_total.saturating_add(bill.total.won());
            continue;
        }
        let body = if same_content {
            None
        } else {
            let mut html = Vec::with_capacity(rendered.html.len() / 2);
            gzip.compress(rendered.html.as_bytes(), &mut html)
                .map_err(|e| format!("customer {id}: gzip failed: {e}"))?;
            let mut sms = Vec::with_capacity(rendered.sms.len());
            gzip.compress(rendered.sms.as_bytes(), &mut sms)
                .map_err(|e| format!("customer {id}: gzip failed: {e}"))?;
            Some(Members { html, sms })
        };
        // A new invoice's key and ranges are set when the render's invoices are packed; one
        // whose content is the same keeps the members its delivery points at (or its own SMS
        // text, when it was rendered before the text went into the pack).
        let (email_key, email_range, sms_range) = match (&body, before) {
            (None, Some(e)) => (e.email_key.clone(), e.email_range, e.sms_range),
            _ => (String::new(), None, None),
        };
        let content = DeliveryContent {
            email_key,
            email_range,
            template_version: version.to_owned(),
            content_hash: rendered.content_hash,
            subject: rendered.subject,
            sms_text: if sms_range.is_some() {
                String::new()
            } else {
                rendered.sms
            },
            sms_range,
        };
        let mut delivery = Box::new(Delivery::ready(
            bill.cycle,
            bill.shard,
            id,
            customer.send_day,
            customer.dnd,
            customer.preferred_channel,
            bill.total,
            content,
            now,
        ));
        delivery.email_hash = Some(email_hash);
        out.rendered_total = out.rendered_total.saturating_add(delivery.total.won());
        out.work.push(match (before, body) {
            (None, Some(body)) => Work::Create { delivery, body },
            (None, None) => {
                return Err(format!(
                    "customer {}: a new delivery without its invoice",
                    delivery.customer_id
                ));
            }
            (Some(e), body) => Work::Update {
                delivery,
                old_hash: e.content_hash.clone(),
                body,
                email_hash: new_email_hash,
            },
        });
    }
    if error_count > 0 {
        return Err(format!(
            "{error_count} invoices cannot be rendered, first: {}",
            errors.join("; ")
        ));
    }
    Ok(out)
}

/// Writes one delivery; its invoice is in the pack uploaded before. An update
/// points a waiting delivery at its new invoice with a conditional write; the
/// invoice it pointed at stays where it was (packs are never overwritten with
/// other bytes).
async fn apply(deps: &Deps, work: Work, now: DateTime<Utc>) -> Result<Applied, RenderError> {
    let mut a = Applied::default();
    match work {
        Work::Create { delivery, .. } => match deps.deliveries.create(&delivery).await? {
            PutOutcome::Created => a.created = 1,
            PutOutcome::AlreadyExists => a.kept = 1,
        },
        Work::Update {
            delivery,
            old_hash,
            email_hash,
            ..
        } => {
            let outcome = deps
                .deliveries
                .update_content(
                    delivery.cycle,
                    delivery.shard,
                    &delivery.customer_id,
                    &old_hash,
                    &delivery.content,
                    delivery.total,
                    email_hash.as_deref(),
                    now,
                )
                .await?;
            match outcome {
                UpdateOutcome::Updated => a.updated = 1,
                UpdateOutcome::Moved => a.kept = 1,
            }
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use domain::{CustomerId, DeliveryState, Krw};

    use super::*;

    fn bill(id: &str, total: i64) -> Bill {
        Bill {
            cycle: "2026-11".parse().unwrap(),
            customer_id: CustomerId::new(id).unwrap(),
            shard: 3,
            catalog_version: "2026-v1".into(),
            charges: Krw(total),
            discounts: Krw::ZERO,
            taxable_base: Krw(total),
            vat: Krw::ZERO,
            rounding: Krw::ZERO,
            total: Krw(total),
            lines: Vec::new(),
        }
    }

    fn settled(bills: &[Bill]) -> ShardRecord {
        ShardRecord {
            shard: 3,
            status: ShardStatus::Done,
            run_id: "run".into(),
            catalog_version: "2026-v1".into(),
            cursor: None,
            customers: bills.len() as u64,
            bills: bills.len() as u64,
            not_billable: 0,
            usage_lines: 0,
            checksum: bills.iter().map(|b| b.total.won()).sum(),
            digest: shard_digest(bills),
            error_count: 0,
            errors: Vec::new(),
            attempts: 1,
            updated_at: String::new(),
            suspense: None,
            render: None,
        }
    }

    fn existing(id: &str, state: DeliveryState, total: Option<i64>) -> Existing {
        Existing {
            customer_id: id.into(),
            state: state.as_str().into(),
            content_hash: "h".into(),
            template_version: "v1".into(),
            email_hash: None,
            total,
            email_key: "invoices/2026-11/00003/packs/v1-0123456789abcdef.html".into(),
            email_range: None,
            sms_range: None,
        }
    }

    #[test]
    fn the_bills_settled_pass_with_their_digest_and_sum() {
        let bills = vec![bill("C1", 10_000), bill("C2", 20_000)];
        let read = check_bills(3, &settled(&bills), &bills).unwrap();
        assert_eq!(
            read,
            BillsRead {
                digest: shard_digest(&bills),
                total: 30_000
            }
        );
    }

    #[test]
    fn a_changed_or_missing_bill_is_named_with_counts_and_sums() {
        let bills = vec![bill("C1", 10_000), bill("C2", 20_000)];
        let record = settled(&bills);
        let mut changed = bills.clone();
        changed[1].total = Krw(20_010);
        let e = check_bills(3, &record, &changed).unwrap_err();
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "BillsChanged");
        assert!(
            d.error_message.starts_with(
                "shard 3: the bills read (2 bills, Σ 30,010 won) are not the bills settled (2 bills, Σ 30,000 won)"
            ),
            "{}",
            d.error_message
        );
        // Same total, other content: the digest sees it.
        let mut relabelled = bills.clone();
        relabelled[0].catalog_version = "2026-v2".into();
        let e = check_bills(3, &record, &relabelled).unwrap_err();
        assert!(e.to_string().contains("(2 bills, Σ 30,000 won) are not"), "{e}");
        let e = check_bills(3, &record, &bills[..1]).unwrap_err();
        assert!(
            e.to_string()
                .contains("the bills read (1 bills, Σ 10,000 won) are not the bills settled (2 bills"),
            "{e}"
        );
    }

    #[test]
    fn only_deliveries_that_moved_on_with_other_totals_disagree() {
        let bills = vec![
            bill("C1", 10_000),
            bill("C2", 20_000),
            bill("C3", 30_000),
            bill("C4", 40_000),
        ];
        let existing = vec![
            // Waiting: render rewrites it with its bill.
            existing("C1", DeliveryState::Ready, Some(1)),
            existing("C2", DeliveryState::SentEmail, Some(20_000)),
            existing("C3", DeliveryState::Queued, Some(31_000)),
            existing("C4", DeliveryState::Dead, None),
        ];
        let wrong = kept_disagreements(&bills, &existing);
        assert_eq!(
            wrong,
            vec![("C3".into(), Some(31_000), 30_000), ("C4".into(), None, 40_000)]
        );
        let e = kept_error(3, bills.len(), &wrong);
        assert_eq!(
            e.to_string(),
            "shard 3: 2 of 4 bills state other totals than their deliveries already sent or on their way \
             (deliveries Σ 31,000 won, bills Σ 70,000 won), first: customer C3 (delivery 31,000 won, \
             bill 30,000 won), customer C4 (delivery unreadable, bill 40,000 won)"
        );
    }
}
