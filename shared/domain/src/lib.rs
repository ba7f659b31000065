//! Domain types shared by every function: money, billing cycles, customers,
//! bills, delivery slots and personal-data protection.
//!
//! Nothing in this crate reads the clock, the environment or the network:
//! every rule is a function of its inputs, so the same inputs give the same
//! result in any month, on any machine.

pub mod bill;
pub mod calendar;
pub mod customer;
pub mod delivery;
pub mod dispatch;
pub mod money;
pub mod pii;
pub mod sending;
pub mod settlement;
pub mod slots;
pub mod text;

pub use bill::{Bill, BillLine, LineKind};
pub use calendar::{Cycle, CycleError};
pub use customer::{Channel, Contact, Contract, Customer, CustomerError, CustomerId, Family, SendDay};
pub use delivery::{Delivery, DeliveryContent, DeliveryId, DeliveryState};
pub use money::Krw;
pub use slots::{ContactWindow, QuietWindow, Slot, SlotError, SlotSet};
