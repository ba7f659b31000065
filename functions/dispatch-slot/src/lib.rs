//! `DispatchSlot`: run by EventBridge Scheduler at the start of every
//! two-hour slot (Asia/Seoul), it enqueues the deliveries whose time has come.
//!
//! * **The slot** is the one containing the event's `scheduled_time`. A slot
//!   the system quiet window touches enqueues nothing at all.
//! * **Which cycles**: every cycle of the run's horizon
//!   ([`domain::dispatch::dispatched_cycles`]: the cycle whose invoices go
//!   out this month and those before it, [`DISPATCH_HORIZON_CYCLES`](domain::dispatch::DISPATCH_HORIZON_CYCLES) in
//!   all, so that an operator's `schedule` up to 400 days ahead, or a
//!   `resend` of an old month, is still enqueued) that is `SETTLED` — the
//!   close gate:
//!   nothing of a cycle that is still settling or failed reconciliation is
//!   ever sent. The cycle records are read with one consistent
//!   `BatchGetItem`; the report names the settled cycles it looked at
//!   (`cycles`) and the others it found (`unsettled`).
//! * **What is due**: in each of those cycles, the deliveries found in the
//!   `Due` index with `available_at` at or before the slot's start: `READY`
//!   ones, and `QUEUED` or `SENDING` ones whose re-check time has come (no
//!   sender claimed the message, a message was lost or dead-lettered for a
//!   cause that was not the delivery's own, a sender died; a `SENDING` one
//!   only once its sender's lease has ended). A missed run is caught up by
//!   the next: `available_at` only grows older.
//! * **Cost**: one `BatchGetItem` for the cycle records, the quota (one
//!   `GetAccount` with SES; with a 24-hour limit, one `Query` of the ledger
//!   and two `UpdateItem`s), then one `Query`
//!   per settled cycle and bucket ([`DUE_BUCKETS`](domain::delivery::DUE_BUCKETS)) — up to
//!   15 × 32 = 480 a run once fifteen months are settled, nearly all of them
//!   on empty partitions (one read unit each at most: under 0.18 million a
//!   month even if all twelve slots of a day were open — cents) — plus a
//!   page more per 200 due entries, a `BatchGetItem` of the suppression list
//!   per page with email hashes, and, when the quota cuts, a second and a
//!   third read of the partitions that wanted more.
//! * **Per delivery** ([`domain::dispatch::decide`]): not this slot if the
//!   customer's DND has it; on the preferred channel if the channel policy
//!   enables it, else the other enabled one; left `READY` (paused) if none is.
//! * **Route**: a delivery whose `route` names a channel (`sms` once the
//!   provider's evidence or the suppression list ruled email out) goes by
//!   that channel only, under the same slot rules, and is left `READY`
//!   (paused) while the policy disables it — never on the other channel. The
//!   `Due` index projects `route` and `email_hash`, so this costs no read.
//! * **Suppression** (the early skip; the sender checks again with the
//!   contact it opens): the entries a page sends by email that carry an
//!   `email_hash` are looked up in the suppression list
//!   ([`adapters::suppressions`], `SUPPRESSION_TABLE`), one batch per page;
//!   a listed one goes by SMS instead if it may, else it stays `READY`
//!   (paused). The report counts them (`suppressed`). A list that cannot be
//!   read stops the bucket like any store.
//! * **The 24-hour quota**: email may go out only as fast as the provider's
//!   rolling 24-hour quota lets it ([`providers::QuotaSource`], read once a
//!   run: SES `GetAccount`, or the mock's `MOCK_MAX_24H_SEND`; unset:
//!   unlimited, and none of what follows applies). The run's budget is the
//!   quota less what is used: the larger of what the provider counts as sent
//!   and what dispatch itself enqueued on email in the last 24 hours, in the
//!   queue or sent — its own ledger ([`adapters::dispatch_ledger`]: one item
//!   per slot in the cycles table, one attribute per invocation set, not
//!   added, so a repeated write after a lost answer never counts twice; the
//!   budget reserved before the first enqueue and settled to what was
//!   enqueued at the end, so a crash in between over-counts, never
//!   under-counts; a continuation or a retry reads what the earlier
//!   invocations recorded). The budget is shared by the partitions: a first
//!   round gives each an equal share, a second shares what is left among
//!   those that wanted more, a last lets them take the rest — each takes its
//!   oldest due email first. What the budget leaves stays due as it is
//!   (`over_quota`, carried to the next open slot, `carried_to`): the next
//!   run finds it first, so a peak day is spread over the following slots,
//!   not dropped. SMS is not limited by it. A quota that cannot be read
//!   fails the run ([`DispatchError::Quota`]) rather than plan blind.
//! * **No slot at all**: a customer whose DND covers every slot the quiet
//!   window leaves (the loader refuses such a customer against the quiet
//!   window of the day it loads; the window may change later) could never be
//!   sent to. Dispatch records a failure (stage `dispatch`, code
//!   `no-allowed-slot`, the slots and the window, never personal data) and
//!   then ends the delivery `DEAD`, out of the `Due` index; an operator
//!   resends it once the customer's DND or the window allows a slot. A
//!   `SENDING` one is enqueued instead: the sender that takes it over ends
//!   it with its own slot check.
//! * **The channel policy** is read once per run: the operators' runtime
//!   setting (`AdminTable`, see [`adapters::settings`]) when they have set
//!   one, else `CHANNEL_POLICY`. A setting that cannot be read fails the run
//!   (the next slot's run catches up) rather than guess.
//! * **Exactly once**: `READY → QUEUED` is a conditional write per delivery,
//!   so of two concurrent runs one takes each delivery; only then is its
//!   message sent (`SendMessageBatch`, ten at a time, ids only). Every write
//!   is named by a token unique to the invocation (the run id and a random
//!   nonce: a retried invocation keeps its run id), so a write whose answer
//!   was lost and which the SDK's retry found refused by its own condition
//!   still counts as this run's ([`adapters::deliveries::write`]); a write
//!   with no answer at all is settled by a consistent read, and if even that
//!   fails it is never counted as taken. A message SQS still refuses after
//!   the retries puts its delivery back to `READY` (only if nothing touched
//!   it since this run's write): nothing stays `QUEUED` without a message,
//!   except after a crash or a failed store between the two steps, which the
//!   re-check time repairs (the senders' claims make a second message
//!   harmless).
//! * **A store that fails** (a read, or a write whose outcome stays unknown)
//!   stops its bucket; the other buckets finish what they started, then the
//!   run fails: the scheduler's retry, or the next slot's run, catches up,
//!   and nothing the failed run did is done twice.
//! * **Bounded**: buckets are read `bucket_concurrency` at a time, writes
//!   `write_concurrency` at a time.
//! * **Continuation**: near its deadline the run stops between pages and
//!   reports `complete: false`; what it left is still due. It then puts the
//!   same event, with `continuation` counted up, on the continuation queue,
//!   which invokes this function again (at most `max_continuations` times a
//!   slot; past that, the next slot's run catches up). A continuation reads
//!   the index afresh: what the first run took is no longer `READY` there,
//!   and a continuation racing the run it continues (or any other run) loses
//!   the conditional write, so nothing is enqueued twice.
//! * **Bad data**: an index entry that does not decode is recorded in the
//!   failure log (stage `dispatch`, code `corrupt-entry`, the reason, never
//!   personal data) and parked: taken out of the `Due` index, the item left
//!   as it is for an operator. The rest proceed.
//!
//! # Where things are
//!
//! * `event`: what a run is given — [`DispatchEvent`], the [`Resume`] point
//!   a continuation carries, [`parse_event`].
//! * `report`: what it answers — [`DispatchReport`], with its [`QuotaPlan`].
//! * `quota`: the quota plan — the budget, its sharing between partitions in
//!   rounds, and the channels a `route` leaves.
//! * `deps`: what it is built from — [`Config`] and [`Deps`]
//!   ([`Deps::load`]).
//! * `error`: how it fails — [`DispatchError`] and the `errorType` of each
//!   variant.
//! * `run`: the run — [`handle`], [`dispatch`] (the slot, the settled
//!   cycles, the channel policy, the buckets a bounded number at a time) and
//!   its continuation.
//! * `bucket`: one index partition of a run — its pages read and decided,
//!   the email checked against the suppression list and cut to the
//!   partition's share, then the writes: enqueue, end `DEAD` for no allowed
//!   slot, park.

mod bucket;
mod deps;
mod error;
mod event;
mod quota;
mod report;
mod run;

pub use deps::{Config, Deps};
pub use error::DispatchError;
pub use event::{DispatchEvent, Resume, parse_event};
pub use report::{DispatchReport, QuotaPlan};
pub use run::{dispatch, handle};
