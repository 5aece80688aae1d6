//! The decision rules a ledger runs under, recorded in the log so that every record is
//! re-executed under the rules that decided it (`schemas/CANONICAL.md` §5).
//!
//! A genesis names the rules the ledger starts under (a genesis without `rules`, as every
//! ledger made before rules were recorded, runs under [`SEQUENCE_ORDER`]); an admin's signed
//! `raise_rules` record raises them from the next record on. Rules are never lowered.

/// Rules 1: a debit is decided against the position's balance after every earlier record
/// (in seq order), whatever business time (`occurred_at`) it names.
pub const SEQUENCE_ORDER: u32 = 1;

/// Rules 2: a debit at business time T is decided against the position's balance at every
/// business time from T on — accepted only if, with it, the position is ≥ 0 at each of them.
pub const BUSINESS_TIME: u32 = 2;

/// The rules a new ledger starts under.
pub const LATEST: u32 = BUSINESS_TIME;

/// Whether this build knows how to decide under `rules`.
pub fn known(rules: u32) -> bool {
    (SEQUENCE_ORDER..=LATEST).contains(&rules)
}
