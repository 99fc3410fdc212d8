//! onestop-core: the pure settlement engine.
//!
//! Given a claim (a bill and its person), the year-to-date accumulators and the policies in
//! force, [`split`] returns what every tier pays to the fen, the new accumulators and an
//! explanation of every amount. No I/O, no clock, no randomness, no serialisation: the same
//! input always gives the same output, which is what replay, audit and simulation rely on.
//!
//! Architecture Invariant: this crate depends on nothing but `jiff` (for calendar dates) and
//! never reads a file, the clock or the environment.

pub mod accumulators;
pub mod book;
pub mod claim;
pub mod money;
pub mod policy;
pub mod reject;
pub mod settlement;
pub mod split;

pub use accumulators::{AccumulatorKey, Accumulators, Counter, Deltas};
pub use book::PolicyBook;
pub use claim::{
    AssistanceCategory, Bill, CatalogClass, Category, Claim, FilingKind, HospitalLevel, Line,
    Person, Region, Scheme, VisitType,
};
pub use money::{Fen, Quantity, Ratio, Rounding, UnitPrice};
pub use reject::{Rejection, RejectionCode};
pub use settlement::{LineSplit, Settlement, Step, StepKind, StepScope, TierPayment, Totals};
pub use split::{classify_line, split, split_into};

pub use jiff::civil::Date;
