//! Fault profiles for the month's delivery phase: the faults AWS really has,
//! switched on through the emulator's fault switches (and the mock
//! provider's hangs) while dispatch and the senders work through the month.
//! Every fault is bounded: a number of calls or a duration, armed at the
//! first few busy slots (slots in which something is enqueued or on the
//! queues), so that the month still ends by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use local_aws::{Emulator, Fault, FaultBound, LostAnswer, Resources, Throttled, WriteOperation};
use providers::{Accepted, BoxFuture, EmailProvider, OutgoingEmail, ProviderError};
use serde::Serialize;

/// Which faults a month runs under (`--fault-profile`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultProfile {
    /// No fault: the reference run.
    #[default]
    None,
    /// Delivery updates (`UpdateItem` on the deliveries table: dispatch's enqueue, the
    /// senders' claim, call mark, completion, retry, fallback and release) applied with their
    /// answer lost: [`LOST_PER_ARM`] calls armed before each dispatch run and again before
    /// each drain of the first [`LOST_SLOTS`] busy slots, by turns an HTTP 500 and a dropped
    /// connection.
    LostAnswers,
    /// `ProvisionedThroughputExceededException` for [`THROTTLE_FOR`] of real time (what the
    /// SDK's retries see) on the deliveries table at three busy slots (once while dispatch
    /// runs, twice while the senders run) and on the customers table at a fourth.
    Throttle,
    /// The invoices' `GetObject` hanging past the senders' call limit ([`SLOW_GET`], more
    /// than the SDK's operation timeout) for [`SLOW_GETS_PER_ARM`] calls at three busy slots.
    SlowS3,
    /// The mock provider hangs on a share of sends ([`HANG_RATE`], [`HANG_MS`]) well past the
    /// senders' provider timeout ([`HANG_PROVIDER_TIMEOUT_MS`]); the mock can be asked whether
    /// a key was accepted.
    ProviderHang,
    /// [`ProviderHang`](Self::ProviderHang) with an email provider that cannot be asked
    /// (as SES): a call cut off while taken over is left `UNCONFIRMED`, never sent again.
    ProviderHangUnaskable,
    /// Lost answers, throttling, slow invoice reads and provider hangs together.
    All,
}

impl FaultProfile {
    pub fn name(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::LostAnswers => "lost-answers",
            FaultProfile::Throttle => "throttle",
            FaultProfile::SlowS3 => "slow-s3",
            FaultProfile::ProviderHang => "provider-hang",
            FaultProfile::ProviderHangUnaskable => "provider-hang-unaskable",
            FaultProfile::All => "all",
        }
    }

    fn lost_answers(self) -> bool {
        matches!(self, FaultProfile::LostAnswers | FaultProfile::All)
    }

    fn throttles(self) -> bool {
        matches!(self, FaultProfile::Throttle | FaultProfile::All)
    }

    fn slow_s3(self) -> bool {
        matches!(self, FaultProfile::SlowS3 | FaultProfile::All)
    }

    fn hangs(self) -> bool {
        matches!(
            self,
            FaultProfile::ProviderHang | FaultProfile::ProviderHangUnaskable | FaultProfile::All
        )
    }

    /// Whether the email provider cannot be asked about a key.
    pub fn unaskable(self) -> bool {
        self == FaultProfile::ProviderHangUnaskable
    }

    /// The senders' variables this profile sets (the mock's hangs and the provider timeout).
    pub fn sender_overrides(self) -> Vec<(&'static str, String)> {
        if !self.hangs() {
            return Vec::new();
        }
        vec![
            ("MOCK_HANG_RATE", HANG_RATE.to_string()),
            ("MOCK_HANG_MS", HANG_MS.to_string()),
            ("PROVIDER_TIMEOUT_MS", HANG_PROVIDER_TIMEOUT_MS.to_string()),
        ]
    }

    /// What the profile does, for the report.
    pub fn describe(self) -> String {
        let mut parts = Vec::new();
        if self.lost_answers() {
            parts.push(format!(
                "deliveries UpdateItem answers lost ({LOST_PER_ARM} calls before each dispatch run and each drain of \
                 the first {LOST_SLOTS} busy slots, a 500 and a dropped connection by turns)"
            ));
        }
        if self.throttles() {
            parts.push(format!(
                "throttling for {} s of real time: the deliveries table at busy slots {} (dispatch) and {}, {} \
                 (senders), the customers table's reads at busy slot {}",
                THROTTLE_FOR.as_secs(),
                THROTTLE_DISPATCH_SLOT,
                THROTTLE_SEND_SLOTS[0],
                THROTTLE_SEND_SLOTS[1],
                THROTTLE_CUSTOMERS_SLOT
            ));
        }
        if self.slow_s3() {
            parts.push(format!(
                "invoice GetObject delayed {} s (past the senders' call limit) for {SLOW_GETS_PER_ARM} calls at busy \
                 slots {:?}",
                SLOW_GET.as_secs(),
                SLOW_S3_SLOTS
            ));
        }
        if self.hangs() {
            parts.push(format!(
                "provider hangs on {:.0}% of sends for {HANG_MS} ms, provider timeout {HANG_PROVIDER_TIMEOUT_MS} ms{}",
                HANG_RATE * 100.0,
                if self.unaskable() {
                    ", email provider cannot be asked (as SES)"
                } else {
                    ", the mock can be asked"
                }
            ));
        }
        if parts.is_empty() {
            "no fault".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// Lost answers armed at a time (the switch is re-armed, not added to).
pub const LOST_PER_ARM: u32 = 15;
/// Busy slots whose dispatch run and drain lose answers.
pub const LOST_SLOTS: u64 = 24;
/// How long one throttle lasts, in real time.
pub const THROTTLE_FOR: Duration = Duration::from_secs(30);
/// The busy slot whose dispatch run is throttled (deliveries table, reads and writes).
pub const THROTTLE_DISPATCH_SLOT: u64 = 2;
/// The busy slots whose senders are throttled (deliveries table, reads and writes).
pub const THROTTLE_SEND_SLOTS: [u64; 2] = [1, 3];
/// The busy slot whose senders find the customers table's reads throttled.
pub const THROTTLE_CUSTOMERS_SLOT: u64 = 4;
/// How long a slow invoice read waits: past the SDK's operation timeout (25 s).
pub const SLOW_GET: Duration = Duration::from_secs(30);
/// Slow invoice reads armed at a time.
pub const SLOW_GETS_PER_ARM: u32 = 5;
/// The busy slots whose invoice reads are slow.
pub const SLOW_S3_SLOTS: [u64; 3] = [0, 2, 4];
/// Share of provider attempts that hang.
pub const HANG_RATE: f64 = 0.03;
/// How long a hanging attempt waits.
pub const HANG_MS: u64 = 5_000;
/// The senders' provider timeout while the provider hangs (above any `--provider-latency-ms`
/// a run is given up to 1,000 ms).
pub const HANG_PROVIDER_TIMEOUT_MS: u64 = 2_000;

/// The stack's resources the faults apply to.
pub struct Targets {
    pub deliveries: String,
    pub customers: String,
    pub bucket: String,
}

impl Targets {
    pub fn of(resources: &Resources) -> anyhow::Result<Targets> {
        let env = crate::settle::local_function_env(resources, crate::send::SEND_EMAIL);
        let var = |k: &str| {
            env.get(k)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{k} is not in the stack"))
        };
        Ok(Targets {
            deliveries: var("DELIVERIES_TABLE")?,
            customers: var("CUSTOMERS_TABLE")?,
            bucket: var("DATA_BUCKET")?,
        })
    }
}

/// When, in a busy slot, a fault is armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// Before the slot's dispatch run.
    Dispatch,
    /// Before the senders drain the queues.
    Drain,
}

/// The bounded faults armed so far (each at most once), by name and busy slot.
#[derive(Debug, Default)]
pub struct Armed(std::collections::BTreeSet<(&'static str, u64)>);

impl Armed {
    /// True the first time `what` is armed at busy slot `busy`.
    fn first(&mut self, what: &'static str, busy: u64) -> bool {
        self.0.insert((what, busy))
    }
}

/// Arms the faults of `profile` for busy slot `busy` (counted from 0) at `moment`: lost
/// answers every time (the switch is re-armed, not added to), the others once each.
/// Returns what was armed, for the log.
pub async fn arm(
    emulator: &Emulator,
    targets: &Targets,
    profile: FaultProfile,
    busy: u64,
    moment: Moment,
    done: &mut Armed,
) -> anyhow::Result<Vec<String>> {
    let mut armed = Vec::new();
    if profile.lost_answers() && busy < LOST_SLOTS {
        let mode = if busy.is_multiple_of(2) {
            LostAnswer::Error
        } else {
            LostAnswer::Drop
        };
        emulator
            .lose_answers(&targets.deliveries, WriteOperation::UpdateItem, LOST_PER_ARM, mode)
            .await?;
        armed.push(format!("{LOST_PER_ARM} lost answers ({mode:?})"));
    }
    if profile.throttles() {
        let deliveries = match moment {
            Moment::Dispatch => busy == THROTTLE_DISPATCH_SLOT && done.first("throttle-dispatch", busy),
            Moment::Drain => THROTTLE_SEND_SLOTS.contains(&busy) && done.first("throttle-send", busy),
        };
        if deliveries {
            emulator
                .throttle(&targets.deliveries, FaultBound::For(THROTTLE_FOR), Throttled::All)
                .await?;
            armed.push(format!("deliveries throttled {} s", THROTTLE_FOR.as_secs()));
        }
        if moment == Moment::Drain && busy == THROTTLE_CUSTOMERS_SLOT && done.first("throttle-customers", busy) {
            emulator
                .throttle(&targets.customers, FaultBound::For(THROTTLE_FOR), Throttled::Reads)
                .await?;
            armed.push(format!("customers reads throttled {} s", THROTTLE_FOR.as_secs()));
        }
    }
    if profile.slow_s3() && moment == Moment::Drain && SLOW_S3_SLOTS.contains(&busy) && done.first("slow-s3", busy) {
        emulator
            .delay_get_object(&targets.bucket, "invoices/", SLOW_GETS_PER_ARM, SLOW_GET)
            .await?;
        armed.push(format!(
            "{SLOW_GETS_PER_ARM} invoice reads delayed {} s",
            SLOW_GET.as_secs()
        ));
    }
    Ok(armed)
}

/// Removes every switch of the stack's resources (their counts go with them: read
/// [`fired`] first).
pub async fn clear(emulator: &Emulator, targets: &Targets) -> anyhow::Result<()> {
    for r in [&targets.deliveries, &targets.customers, &targets.bucket] {
        emulator.clear_faults(r).await?;
    }
    Ok(())
}

/// What the emulator's switches faulted on the stack's resources (`prefix`), by switch
/// and resource.
pub async fn fired(emulator: &Emulator, prefix: &str) -> anyhow::Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let counts = emulator.faults_fired().await?;
    let mut out = BTreeMap::new();
    for fault in [
        Fault::LostAnswer,
        Fault::Throttle,
        Fault::SlowGet,
        Fault::Unprocessed,
        Fault::SendBatch,
    ] {
        let by_resource: BTreeMap<String, u64> = counts
            .all()
            .get(fault.as_str())
            .map(|m| {
                m.iter()
                    .filter(|(r, n)| r.contains(prefix) && **n > 0)
                    .map(|(r, n)| {
                        (
                            r.strip_prefix(prefix).unwrap_or(r).trim_start_matches('-').to_owned(),
                            *n,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !by_resource.is_empty() {
            out.insert(fault.as_str().to_owned(), by_resource);
        }
    }
    Ok(out)
}

/// An email provider that cannot be asked whether a key was accepted, as SES: the mock
/// underneath sends (and logs every accepted send, so duplicates still show).
pub struct CannotBeAsked(pub Arc<dyn EmailProvider>);

impl EmailProvider for CannotBeAsked {
    fn send_email<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        self.0.send_email(email)
    }
}
