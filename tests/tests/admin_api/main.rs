//! The admin API against the emulator: every route, the errors a caller can make, commands
//! that are idempotent by their id, audited, and refused in the wrong state, and the roles
//! that decide who may use which route. The fixture (`Api`: a stack with six queued
//! deliveries, the handler called in process) is in `integration_tests::admin`.

mod console_reads;
mod corrections;
mod hold_and_force_send;
mod preferences;
mod reads;
mod resend;
mod roles;
mod schedule;
mod settings_and_queues;
mod suppressions;
