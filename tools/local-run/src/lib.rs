//! The local runner behind the README's main-job command: it generates a
//! data set, provisions everything `template.yaml` declares in the local
//! emulator, loads the data the way production data arrives, settles the
//! month by running the deployable state machine on the emulator's Step
//! Functions engine with our real handlers (settle and render), and reports.
//! [`dispatch`] runs the dispatch slots of a month on a virtual clock.

pub mod dispatch;
pub mod load;
pub mod settle;
