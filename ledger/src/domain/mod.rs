//! The pure domain core: no I/O, no clock, no sled, no NATS.
//!
//! - [`quantity`]: exact grams from the operator's decimal text.
//! - [`ids`], [`model`], [`reference`]: the nouns and the reference lists.
//! - [`command`] (imperative, from operators) and [`event`] (past-tense facts, in the log).
//! - [`decide()`]: `(state, command, signer, now) -> Result<Decision, Rejection>`.
//! - [`State::apply`]: folds an event into state; the only way state changes.
//! - [`rules`]: the decision rules in force, recorded in the log; [`timeline`]: a position's
//!   balance over business time, which rules 2 decide debits against; [`timelines`]: every
//!   position's timeline, keyed compactly.

pub mod command;
pub mod decide;
pub mod event;
mod event_layout;
pub mod ids;
pub mod index;
pub mod model;
pub mod quantity;
pub mod reference;
pub mod rejection;
pub mod rules;
pub mod state;
pub(crate) mod tagged;
pub mod timeline;
pub mod timelines;

pub use command::{Action, AdjustReason, Command, ConvertInto, Direction, FigureKind, Holding, Price, ReleaseReason};
pub use decide::{decide, Decision, History, Signer};
pub use event::{Effects, Event, Flow, FlowKind, Posting};
pub use ids::{Country, EventId, FacilityId, KeyId, LotId, MaterialId, PartyId};
pub use index::{EventIndex, Recorded};
pub use model::{Facility, Form, HolderType, KeyEntry, KeyRole, Location, LotSpec, Party, PositionKey, Programme};
pub use quantity::{Amount, Quantity, QuantityError, Unit};
pub use reference::Reference;
pub use rejection::{Rejection, RejectionInfo, ShortAt};
pub use state::{Applied, Head, LotState, State, Violation};
