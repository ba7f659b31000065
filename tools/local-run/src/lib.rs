//! The local runner behind the README's main-job command: it generates a
//! data set, provisions everything `template.yaml` declares in the local
//! emulator, loads the data the way production data arrives, settles the
//! month by running the deployable state machine on the emulator's Step
//! Functions engine with our real handlers (settle and render), and reports.
//! [`dispatch`] runs the dispatch slots of a month on a virtual clock.

pub mod bench;
pub mod deliver;
pub mod dispatch;
pub mod evidence;
pub mod faults;
pub mod load;
pub mod logs;
pub mod provider_wait;
pub mod report;
pub mod reprice;
pub mod seed;
pub mod send;
pub mod settle;

/// A Lambda context for invoking a handler in-process, its deadline `within` from now
/// (what the runtime would hand a function with that much time left).
pub fn invocation(within: std::time::Duration) -> lambda_runtime::Context {
    let mut ctx = lambda_runtime::Context::default();
    let deadline = std::time::SystemTime::now() + within;
    ctx.deadline = deadline
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    ctx
}
