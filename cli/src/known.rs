//! The ids an operator may name, and "did you mean" for the ones that name nothing.
//!
//! Materials and partners come from the compiled reference lists
//! ([`stockpile_ledger::domain::Reference`]); parties, facilities and lots from the
//! projector's [`Registry`] of the log. A query that filters on an unknown id would answer
//! zero, which reads like a fact; it is refused instead (exit 1), naming the closest known id.

use crate::error::CliError;
use stockpile_ledger::domain::model::IN_TRANSIT;
use stockpile_ledger::domain::Reference;
use stockpile_projector::Registry;

/// The kinds of id an operator types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Material,
    Partner,
    Party,
    Facility,
    Lot,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Material => "material",
            Kind::Partner => "partner",
            Kind::Party => "party",
            Kind::Facility => "facility",
            Kind::Lot => "lot",
        }
    }

    /// The `stockpile list` subject that shows every id of this kind.
    pub fn list(self) -> &'static str {
        match self {
            Kind::Material => "materials",
            Kind::Partner => "partners",
            Kind::Party => "parties",
            Kind::Facility => "facilities",
            Kind::Lot => "lots",
        }
    }

    /// From the noun of a ledger rejection (`unknown lot "co-2"`).
    pub fn from_noun(noun: &str) -> Option<Kind> {
        [Kind::Material, Kind::Partner, Kind::Party, Kind::Facility, Kind::Lot].into_iter().find(|k| k.noun() == noun)
    }

    /// How ids of this kind come into being, for when there are none yet or none is close.
    fn origin(self) -> &'static str {
        match self {
            Kind::Material | Kind::Partner => "the reference list compiled into this build",
            Kind::Party => "`stockpile register party`",
            Kind::Facility => "`stockpile register facility`",
            Kind::Lot => "`stockpile acquire` or `stockpile convert`, never from registration",
        }
    }
}

/// The ids of one kind that exist: from the reference lists or the log's registry.
pub fn ids(kind: Kind, registry: Option<&Registry>) -> Vec<String> {
    let reference = Reference::get();
    match (kind, registry) {
        (Kind::Material, _) => reference.materials().map(|m| m.id.as_str().to_string()).collect(),
        (Kind::Partner, _) => reference.partners().map(|p| p.code.as_str().to_string()).collect(),
        (Kind::Party, Some(r)) => r.parties().map(|p| p.id.as_str().to_string()).collect(),
        (Kind::Facility, Some(r)) => r.facilities().map(|f| f.id.as_str().to_string()).collect(),
        (Kind::Lot, Some(r)) => r.lots().map(|l| l.id.as_str().to_string()).collect(),
        (_, None) => Vec::new(),
    }
}

/// Whether `kind` needs the log's registry to be checked (materials and partners do not).
pub fn needs_registry(kind: Kind) -> bool {
    !matches!(kind, Kind::Material | Kind::Partner)
}

/// The most edits (insertions, deletions, substitutions, swaps) between a typed id and a
/// suggestion: a third of the typed id, at least one. Further than that, a suggestion is more
/// often another real id than the one meant, and would mislead.
fn edits_max(typed: &str) -> usize {
    (typed.chars().count() / 3).max(1)
}

/// The known id closest to `typed` (ignoring case), if it is within [`edits_max`].
pub fn closest<'a>(typed: &str, known: &'a [String]) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&typed_lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= edits_max(typed))
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, k)| k.as_str())
}

/// What to tell an operator who named an unknown `typed` of `kind`.
pub fn advice(kind: Kind, typed: &str, known: &[String]) -> String {
    let noun = kind.noun();
    let list = kind.list();
    match closest(typed, known) {
        Some(best) => format!("did you mean {best:?}? (stockpile list {list} shows them all)"),
        None if known.is_empty() => format!("there are no {list} yet; they come from {}", kind.origin()),
        None => format!(
            "no known {noun} is close; stockpile list {list} shows them all ({list} come from {})",
            kind.origin()
        ),
    }
}

/// `Ok` if every id in `typed` exists; otherwise [`CliError::Unknown`] for the first that
/// does not, with advice. A facility filter also accepts `in_transit`.
pub fn check(kind: Kind, typed: &[String], registry: Option<&Registry>) -> Result<(), CliError> {
    let mut known = ids(kind, registry);
    if kind == Kind::Facility {
        known.push(IN_TRANSIT.to_string());
    }
    for id in typed {
        if !known.contains(id) {
            return Err(CliError::Unknown {
                message: format!("unknown {} {id:?}: {}", kind.noun(), advice(kind, id, &known)),
                suggestion: closest(id, &known).map(str::to_string),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn closest_finds_one_typo_and_ignores_case_but_not_strangers() {
        let k = known(&["cobalt", "copper", "gallium"]);
        for (typed, want) in [
            ("coballt", Some("cobalt")),
            ("cobalt", Some("cobalt")),
            ("Cobalt", Some("cobalt")),
            ("copepr", Some("copper")),
            ("galium", Some("gallium")),
            ("xenon", None),
            ("co", None),
        ] {
            assert_eq!(closest(typed, &k), want, "{typed}");
        }
        assert_eq!(closest("nl", &known(&["DE", "NL"])), Some("NL"));
        assert_eq!(closest("co-9", &known(&["co-1", "ga-1"])), Some("co-1"));
    }
}
