//! Domain types shared by every function: money, billing cycles, customers,
//! bills, delivery slots and personal-data protection.
//!
//! Nothing in this crate reads the clock, the environment or the network:
//! every rule is a function of its inputs, so the same inputs give the same
//! result in any month, on any machine.

/// `Serialize` as the type's `Display` text, `Deserialize` from a string through its
/// `FromStr`: the serde form of the types that have one canonical text, such as a cycle
/// (`2026-11`) or a quiet window (`21:00-08:00`). A text that does not parse is serde's
/// "invalid value" with `$expected` (what the text should look like), never the text itself.
macro_rules! serde_as_text {
    ($t:ty, $expected:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d)?
                    .parse()
                    .map_err(|_| serde::de::Error::invalid_value(serde::de::Unexpected::Other("text"), &$expected))
            }
        }
    };
}

pub mod bill;
pub mod calendar;
pub mod customer;
pub mod decode;
pub mod delivery;
pub mod dispatch;
pub mod evidence;
pub mod link;
pub mod money;
pub mod pii;
pub mod range;
pub mod sending;
pub mod settlement;
pub mod slots;
pub mod text;

pub use bill::{Bill, BillLine, LineKind};
pub use calendar::{Cycle, CycleError};
pub use customer::{
    Channel, ClearContact, ClearCustomer, Contact, Contract, Customer, CustomerError, CustomerId, CustomerRecord,
    Family, SendDay,
};
pub use delivery::{Delivery, DeliveryContent, DeliveryId, DeliveryState};
pub use money::Krw;
pub use slots::{ContactWindow, QuietWindow, Slot, SlotError, SlotSet};
