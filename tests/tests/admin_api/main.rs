//! The admin API against the emulator: every route, the errors a caller can make, and
//! commands that are idempotent by their id, audited, and refused in the wrong state. The
//! fixture (`Api`: a stack with six queued deliveries, the handler called in process) is in
//! `integration_tests::admin`.

mod hold_and_force_send;
mod reads;
mod resend;
mod schedule;
mod settings_and_queues;
