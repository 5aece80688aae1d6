//! Builds a [`Report`] from the views: pure, deterministic, no clock.
//!
//! One pass over the journal gathers, for every position of the reporting partner (or on its
//! territory) in scope, its postings in business-time order. Each position then contributes
//! its balance at the period's start and end and at the five previous year-ends, and its
//! flows in the period; opening + flows = closing is checked against a closing computed
//! separately, before anything is emitted.
//!
//! **Withheld positions.** A (party, lot) withheld on national-security grounds at the end of
//! the period is left out of *every* figure of the report — closing, opening, flows and the
//! five-year history — and replaced by a reasoned notification (material, since when, why; no
//! quantity, holder or site). Leaving it out of the closing only would let anyone read the
//! withheld quantity off the movements or the history.

use super::model::*;
use super::period::days_in_year;
use crate::query::{tonnes, AsOf};
use crate::views::journal::JournalEntry;
use crate::views::positions::{Attrs, IN_TRANSIT_LOCATION, NO_COUNTRY};
use crate::views::{Movement, Views, Withholding};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use stockpile_ledger::canonical;
use stockpile_ledger::domain::model::PURITY_PPM_MAX;
use stockpile_ledger::domain::reference::Partner;
use stockpile_ledger::domain::{Country, FigureKind, HolderType, MaterialId, Programme, Reference};

/// Why no report was made. Nothing was emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("unknown partner {partner:?}: use an ISO 3166-1 alpha-2 code of the partner reference list (Greece is GR; `stockpile list partners` shows them all)")]
    UnknownPartner { partner: String },
    #[error("partner {partner} is not a member of {framework}: pick a framework it belongs to (`stockpile list partners` shows each partner's frameworks)")]
    NotMember { partner: String, framework: &'static str },
    #[error("the ledger has no records yet: there is nothing to report")]
    EmptyLedger,
    #[error("{material}: opening {opening_g} g + flows {flows_g} g != closing {closing_g} g; the report was not emitted (a bug in the projector: please report it with the ledger export)")]
    Unbalanced { material: String, opening_g: i64, flows_g: i64, closing_g: i64 },
    #[error("{what} does not fit in 64-bit grams")]
    Overflow { what: String },
    #[error("report cannot be encoded: {0}")]
    Encode(String),
}

/// Builds the report of `req` from `views` as they stand (cut at their head).
pub fn build(views: &Views, req: &ReportRequest) -> Result<Report, ReportError> {
    let reference = Reference::get();
    let code = Country::new(req.partner.as_str());
    let partner =
        reference.partner(&code).ok_or_else(|| ReportError::UnknownPartner { partner: req.partner.clone() })?;
    let member = match req.framework {
        Framework::Eu => partner.eu,
        Framework::Iea => partner.iea,
        Framework::Nato => partner.nato,
    };
    if !member {
        return Err(ReportError::NotMember { partner: req.partner.clone(), framework: req.framework.as_str() });
    }
    if views.head.seq == 0 {
        return Err(ReportError::EmptyLedger);
    }
    let scope = req.materials.unwrap_or(match req.framework {
        Framework::Eu => MaterialScope::Strategic,
        Framework::Iea => MaterialScope::All,
        Framework::Nato => MaterialScope::NatoDefenceCritical,
    });
    let cut = Cut::new(req);
    let out = Spelling { framework: req.framework };
    let mut acc = Gather::new(views, req, scope, &code).run(&cut)?;
    let mut materials = Vec::new();
    for (material, m) in std::mem::take(&mut acc.materials) {
        materials.push(material_report(views, req, &out, &material, &code, &cut, m)?);
    }
    let body = Body {
        framework: req.framework,
        partner: out.country(partner),
        partner_name: partner.name.clone(),
        period: req.period,
        period_start: req.period.start().to_string(),
        period_end: req.period.end().to_string(),
        material_scope: scope,
        programmes: match req.framework {
            Framework::Eu => ["EU", "IEA", "NATO", "national"].map(String::from).to_vec(),
            f => vec![f.as_str().to_string()],
        },
        materials,
        private_stocks: acc
            .private
            .iter()
            .map(|(m, a)| Ok(MaterialAmounts { material: m.to_string(), amounts: a.amounts()? }))
            .collect::<Result<_, ReportError>>()?,
        held_for_others: acc
            .for_others
            .iter()
            .map(|((m, owner), a)| {
                Ok(HeldForOther { material: m.to_string(), owner: out.code(owner), amounts: a.amounts()? })
            })
            .collect::<Result<_, ReportError>>()?,
        withheld: acc
            .withheld
            .into_iter()
            .map(|(material, since, reason)| WithheldNotice { material, since, reason })
            .collect(),
    };
    let body_bytes = canonical::to_vec(&body).map_err(|e| ReportError::Encode(e.to_string()))?;
    let partner_out = out.country(partner);
    let header = Header {
        report_id: format!("{}-{}-{}-{}", req.framework.as_str(), partner_out, req.period, views.head.seq),
        framework: req.framework,
        partner: partner_out,
        period: req.period,
        cut_seq: views.head.seq,
        chain_head: canonical::hex(&views.head.hash),
        body_sha256: canonical::hex(&canonical::sha256(&body_bytes)),
        provisional: is_provisional(views, &cut),
    };
    Ok(Report { header, body })
}

/// Whether the period had not ended by ledger time at the cut: the head record's
/// `recorded_at` is before the end of the period's last day (UTC). Ledger time, not the
/// clock, so the mark is a function of the log like everything else in the report. Views
/// whose head has no `recorded_at` cannot tell, and are marked provisional.
fn is_provisional(views: &Views, cut: &Cut) -> bool {
    match views.head.recorded_at.and_then(|t| t.timestamp_nanos_opt()) {
        Some(ns) => ns < cut.end,
        None => true,
    }
}

/// How the addressee spells countries: the Commission writes EL for Greece (and UK).
struct Spelling {
    framework: Framework,
}

impl Spelling {
    fn country(&self, p: &Partner) -> String {
        match self.framework {
            Framework::Eu => p.eu_code.clone(),
            _ => p.code.to_string(),
        }
    }

    fn code(&self, c: &Country) -> String {
        match Reference::get().partner(c) {
            Some(p) => self.country(p),
            None => c.to_string(),
        }
    }
}

/// The instants a report reads, as exclusive cutoffs in ns (postings with `at < cutoff` count).
struct Cut {
    start: i64,
    end: i64,
    year_ends: Vec<(NaiveDate, i64)>,
}

impl Cut {
    fn new(req: &ReportRequest) -> Cut {
        let end_of = |d: NaiveDate| AsOf::Date(d).cutoff_ns();
        let start = match req.period.start().pred_opt() {
            Some(d) => end_of(d),
            None => i64::MIN,
        };
        Cut {
            start,
            end: end_of(req.period.end()),
            year_ends: req.period.previous_year_ends().into_iter().map(|d| (d, end_of(d))).collect(),
        }
    }
}

/// Gross grams and gram·ppm, summed exactly; contained is rounded once per figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sum {
    gross: i128,
    ppm: i128,
}

impl Sum {
    fn add(&mut self, grams: i64, purity_ppm: u32) {
        self.gross += i128::from(grams);
        self.ppm += i128::from(grams) * i128::from(purity_ppm);
    }

    fn amounts(&self) -> Result<Amounts, ReportError> {
        let gross_g = grams(self.gross, "a gross figure")?;
        let contained_g = grams(self.ppm / i128::from(PURITY_PPM_MAX), "a contained figure")?;
        Ok(Amounts { gross_g, gross_t: tonnes(gross_g), contained_g, contained_t: tonnes(contained_g) })
    }
}

fn grams(v: i128, what: &str) -> Result<i64, ReportError> {
    i64::try_from(v).map_err(|_| ReportError::Overflow { what: what.to_string() })
}

/// Everything gathered for one material.
#[derive(Default)]
struct MaterialAcc {
    closing: Sum,
    /// Computed apart from the flows, to check them.
    closing_check: i128,
    opening: i128,
    year_ends: Vec<Sum>,
    forms: BTreeMap<(&'static str, u32), Sum>,
    holders: BTreeMap<HolderType, Sum>,
    locations: BTreeMap<(u8, String), Sum>,
    flows: BTreeMap<(u8, Option<&'static str>), i128>,
}

struct Acc {
    materials: BTreeMap<MaterialId, MaterialAcc>,
    private: BTreeMap<MaterialId, Sum>,
    for_others: BTreeMap<(MaterialId, Country), Sum>,
    withheld: Vec<(String, String, String)>,
}

struct Gather<'a> {
    views: &'a Views,
    req: &'a ReportRequest,
    scope: MaterialScope,
    partner: Option<u32>,
}

/// Flow lines, in the order a report lists them.
const FLOW_LINES: [&str; 8] = [
    "acquired",
    "transferred_in",
    "transferred_out",
    "converted_in",
    "converted_out",
    "released",
    "adjusted",
    "relocated",
];

/// The line a posting counts on. A reversal counts on the line of what it reverses, with the
/// reversed posting's sign flipped: the reversal of a transfer credits the position the
/// transfer debited, and that credit reduces `transferred_out` (it is not a transfer in);
/// likewise for conversions. A reversal's own direction is the opposite of its target's
/// (its effects are the target's, inverted), so the target's direction is `!up`.
fn line_of(e: &JournalEntry) -> (u8, Option<&'static str>) {
    use Movement::*;
    let target_up = (e.delta > 0) != e.movement.is_reversal();
    match e.movement {
        Acquire | ReverseAcquire => (0, None),
        Transfer | ReverseTransfer => (if target_up { 1 } else { 2 }, None),
        Convert | ReverseConvert => (if target_up { 3 } else { 4 }, None),
        Release | ReverseRelease => (5, Some(e.reason.map_or("unrecorded", reason_str))),
        Adjust | ReverseAdjust => (6, None),
        Store | ReverseStore => (7, None),
    }
}

fn reason_str(r: stockpile_ledger::domain::ReleaseReason) -> &'static str {
    use stockpile_ledger::domain::ReleaseReason::*;
    match r {
        EmergencyDrawdown => "emergency_drawdown",
        Sale => "sale",
        Rotation => "rotation",
        Loan => "loan",
        Loss => "loss",
        Donation => "donation",
    }
}

/// Whether a position is withheld at the end of business time `cutoff` (exclusive): the last
/// toggle dated before it (the later record among equal times) is a withholding. Then: since
/// when — the first withholding of the unbroken run of withholdings that ends with it (a
/// second `withhold` restates, it does not restart) — and the reason the last one gives.
fn withheld_at(list: &[Withholding], cutoff: i64) -> Option<(i64, &str)> {
    let k = list.partition_point(|w| w.at_ns < cutoff);
    let last = list[..k].last().filter(|w| w.withheld)?;
    let start = list[..k].iter().rposition(|w| !w.withheld).map_or(0, |i| i + 1);
    Some((list[start].at_ns, last.reason.as_str()))
}

fn date_of(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).date_naive().to_string()
}

impl<'a> Gather<'a> {
    fn new(views: &'a Views, req: &'a ReportRequest, scope: MaterialScope, partner: &Country) -> Gather<'a> {
        Gather { views, req, scope, partner: views.registry.countries.get(partner) }
    }

    fn material_in_scope(&self, id: &MaterialId) -> bool {
        let Some(m) = Reference::get().material(id) else { return self.scope == MaterialScope::All };
        match self.scope {
            MaterialScope::Strategic => m.crma_strategic,
            MaterialScope::Critical => m.crma_strategic || m.crma_critical,
            MaterialScope::All => true,
            MaterialScope::NatoDefenceCritical => m.nato_defence_critical == Some(true),
        }
    }

    fn programme_in_scope(&self, p: Programme) -> bool {
        match self.req.framework {
            Framework::Eu => true,
            Framework::Iea => p == Programme::Iea,
            Framework::Nato => p == Programme::Nato,
        }
    }

    fn class_relevant(&self, a: &Attrs) -> bool {
        let Some(partner) = self.partner else { return false };
        (a.partner == partner || a.facility_country == partner)
            && self.programme_in_scope(a.key.programme)
            && self.material_in_scope(self.views.registry.materials.key(a.key.material))
    }

    fn run(&self, cut: &Cut) -> Result<Acc, ReportError> {
        let v = self.views;
        let relevant: Vec<bool> = v.positions.classes.iter().map(|c| self.class_relevant(&c.attrs)).collect();
        let mut postings: BTreeMap<u32, Vec<&JournalEntry>> = BTreeMap::new();
        for e in &v.journal {
            let row = &v.positions.rows[e.position as usize];
            if relevant[row.class as usize] {
                postings.entry(e.position).or_default().push(e);
            }
        }
        let mut acc = Acc {
            materials: BTreeMap::new(),
            private: BTreeMap::new(),
            for_others: BTreeMap::new(),
            withheld: Vec::new(),
        };
        let empty: Vec<Withholding> = Vec::new();
        for (position, mut entries) in postings {
            // business-time order; the journal is in record order, so equals keep it
            entries.sort_by_key(|e| e.at);
            let row = &v.positions.rows[position as usize];
            let attrs = &v.positions.classes[row.class as usize].attrs;
            let party = v.registry.parties.key(attrs.key.party);
            let lot = v.registry.lots.key(row.lot);
            let toggles = v.registry.withholds.get(&(party.clone(), lot.clone())).unwrap_or(&empty);
            let material = v.registry.materials.key(attrs.key.material).clone();
            let purity = attrs.key.purity_ppm;
            let balance = |cutoff: i64| -> i64 { entries.iter().filter(|e| e.at < cutoff).map(|e| e.delta).sum() };
            let closing = balance(cut.end);
            let withheld_end = withheld_at(toggles, cut.end);
            if Some(attrs.partner) != self.partner {
                // another partner's stock on this territory
                if withheld_end.is_none() && closing != 0 {
                    let owner = v.registry.countries.key(attrs.partner).clone();
                    acc.for_others.entry((material, owner)).or_default().add(closing, purity);
                }
                continue;
            }
            if attrs.holder_type == HolderType::Private {
                if withheld_end.is_none() && closing != 0 {
                    acc.private.entry(material).or_default().add(closing, purity);
                }
                continue;
            }
            if let Some((since, reason)) = withheld_end {
                if entries.iter().any(|e| e.at < cut.end) {
                    acc.withheld.push((material.to_string(), date_of(since), reason.to_string()));
                }
                continue;
            }
            let m = acc.materials.entry(material).or_insert_with(|| MaterialAcc {
                year_ends: vec![Sum::default(); cut.year_ends.len()],
                ..MaterialAcc::default()
            });
            for (i, (_, cutoff)) in cut.year_ends.iter().enumerate() {
                m.year_ends[i].add(balance(*cutoff), purity);
            }
            m.closing_check += i128::from(closing);
            if closing != 0 {
                m.closing.add(closing, purity);
                m.forms.entry((attrs.key.form.as_str(), purity)).or_default().add(closing, purity);
                m.holders.entry(attrs.holder_type).or_default().add(closing, purity);
                m.locations.entry(self.placement(attrs)).or_default().add(closing, purity);
            }
            flows(m, &entries, cut);
        }
        acc.withheld.sort();
        acc.withheld.dedup();
        acc.materials.retain(|_, m| m.is_reportable());
        Ok(acc)
    }

    /// (order, country): home first, then abroad by country, then in transit.
    fn placement(&self, a: &Attrs) -> (u8, String) {
        let r = &self.views.registry;
        if a.key.location == IN_TRANSIT_LOCATION || a.facility_country == NO_COUNTRY {
            return (2, "in_transit".to_string());
        }
        let home = Some(a.facility_country) == self.partner;
        (if home { 0 } else { 1 }, r.countries.key(a.facility_country).to_string())
    }
}

impl MaterialAcc {
    fn is_reportable(&self) -> bool {
        self.closing.gross != 0
            || self.opening != 0
            || self.year_ends.iter().any(|s| s.gross != 0)
            || self.flows.values().any(|g| *g != 0)
    }
}

/// A position's opening and its flows in the period.
fn flows(m: &mut MaterialAcc, entries: &[&JournalEntry], cut: &Cut) {
    for e in entries.iter().filter(|e| e.at < cut.end) {
        if e.at < cut.start {
            m.opening += i128::from(e.delta);
        } else {
            *m.flows.entry(line_of(e)).or_default() += i128::from(e.delta);
        }
    }
}

fn material_report(
    views: &Views,
    req: &ReportRequest,
    out: &Spelling,
    material: &MaterialId,
    partner: &Country,
    cut: &Cut,
    m: MaterialAcc,
) -> Result<MaterialReport, ReportError> {
    let reference = Reference::get().material(material);
    let stock = m.closing.amounts()?;
    let flows_total: i128 = m.flows.values().sum();
    if m.opening + flows_total != m.closing_check || m.closing_check != m.closing.gross {
        return Err(ReportError::Unbalanced {
            material: material.to_string(),
            opening_g: grams(m.opening, "an opening")?,
            flows_g: grams(flows_total, "the flows")?,
            closing_g: grams(m.closing_check, "a closing")?,
        });
    }
    let mut movements = vec![movement("opening", None, m.opening)?];
    for (i, name) in FLOW_LINES.iter().enumerate() {
        if i == 5 {
            for ((_, reason), g) in m.flows.range((5, None)..(6, None)) {
                movements.push(movement(name, reason.map(str::to_string), *g)?);
            }
            continue;
        }
        movements.push(movement(name, None, m.flows.get(&(i as u8, None)).copied().unwrap_or(0))?);
    }
    movements.push(movement("closing", None, m.closing_check)?);
    let year = req.period.year() - 1;
    let end = req.period.end();
    let figure = |kind| views.registry.figure(kind, partner, material, year, cut.end);
    let consumption = ratio(figure(FigureKind::Consumption), year, end, stock.gross_g, 100, 2, "annual consumption");
    let days = i128::from(days_in_year(year));
    let cover = ratio(figure(FigureKind::NetImports), year, end, stock.gross_g, days, 1, "annual net imports");
    let release_rules = match views.registry.release_rules(partner, material, cut.end) {
        Some(r) if r.confidential => RulesNote {
            status: "confidential".into(),
            text: "release, allocation and distribution rules are not disclosed: disclosure would endanger confidential information (CRMA Art. 22(2)(c))".into(),
        },
        Some(r) => RulesNote { status: "published".into(), text: r.text.clone() },
        None => RulesNote {
            status: "not_registered".into(),
            text: format!("no release, allocation and distribution rules were registered by the end of {end}"),
        },
    };
    Ok(MaterialReport {
        material: material.to_string(),
        name: reference.map_or_else(|| material.to_string(), |r| r.name.clone()),
        crma_strategic: reference.is_some_and(|r| r.crma_strategic),
        crma_critical: reference.is_some_and(|r| r.crma_critical),
        stock,
        consumption,
        days_of_cover: cover,
        forms: m
            .forms
            .iter()
            .map(|((form, ppm), s)| {
                Ok(FormLine {
                    form: form.to_string(),
                    purity_ppm: *ppm,
                    purity_pct: format!("{}.{:04}", ppm / 10_000, ppm % 10_000),
                    amounts: s.amounts()?,
                })
            })
            .collect::<Result<_, ReportError>>()?,
        history: cut
            .year_ends
            .iter()
            .zip(&m.year_ends)
            .map(|((d, _), s)| Ok(YearEnd { date: d.to_string(), amounts: s.amounts()? }))
            .collect::<Result<_, ReportError>>()?,
        release_rules,
        holders: m
            .holders
            .iter()
            .map(|(h, s)| Ok(HolderLine { holder_type: holder_str(*h).into(), amounts: s.amounts()? }))
            .collect::<Result<_, ReportError>>()?,
        locations: m
            .locations
            .iter()
            .map(|((order, country), s)| {
                let placement = ["home", "abroad", "in_transit"][usize::from(*order)];
                let country = if *order == 2 { country.clone() } else { out.code(&Country::new(country.as_str())) };
                Ok(LocationLine { country, placement: placement.into(), amounts: s.amounts()? })
            })
            .collect::<Result<_, ReportError>>()?,
        movements,
    })
}

fn holder_str(h: HolderType) -> &'static str {
    match h {
        HolderType::PublicAuthority => "public_authority",
        HolderType::PublicUndertaking => "public_undertaking",
        HolderType::MandatedOperator => "mandated_operator",
        HolderType::Private => "private",
    }
}

fn movement(line: &str, reason: Option<String>, g: i128) -> Result<MovementLine, ReportError> {
    let gross_g = grams(g, "a movement")?;
    Ok(MovementLine { line: line.to_string(), reason, gross_g, gross_t: tonnes(gross_g) })
}

/// `stock × scale / figure` with `decimals` decimals, rounded half away from zero, against
/// the figure of `year` in force at the end of `end` (the period's last day).
fn ratio(
    figure: Option<u64>,
    year: i32,
    end: NaiveDate,
    stock_g: i64,
    scale: i128,
    decimals: u32,
    what: &str,
) -> Ratio {
    let Some(figure_g) = figure else {
        return Ratio {
            status: "not_registered".into(),
            year,
            figure_g: None,
            figure_t: None,
            value: None,
            note: format!(
                "no {what} figure for {year} was registered by the end of {end}: register it with `stockpile register` and --occurred-at on or before {end}"
            ),
        };
    };
    let figure_i64 = i64::try_from(figure_g).unwrap_or(i64::MAX);
    let base = Ratio {
        status: "registered".into(),
        year,
        figure_g: Some(figure_i64),
        figure_t: Some(tonnes(figure_i64)),
        value: None,
        note: format!("gross stock against {what} of {year}"),
    };
    if figure_g == 0 {
        return Ratio { status: "zero".into(), note: format!("the registered {what} of {year} is zero"), ..base };
    }
    Ratio { value: Some(decimal(i128::from(stock_g) * scale, i128::from(figure_g), decimals)), ..base }
}

/// `num / den` (den > 0) as decimal text with `decimals` decimals, rounded half away from zero.
pub(crate) fn decimal(num: i128, den: i128, decimals: u32) -> String {
    let unit = 10i128.pow(decimals);
    let scaled = num.abs() * unit;
    let q = (scaled + den / 2) / den;
    let sign = if num < 0 && q != 0 { "-" } else { "" };
    if decimals == 0 {
        return format!("{sign}{q}");
    }
    format!("{sign}{}.{:0width$}", q / unit, q % unit, width = decimals as usize)
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_round_half_away_from_zero() {
        assert_eq!(decimal(1, 3, 2), "0.33");
        assert_eq!(decimal(2, 3, 2), "0.67");
        assert_eq!(decimal(1, 8, 2), "0.13"); // 0.125
        assert_eq!(decimal(-1, 8, 2), "-0.13");
        assert_eq!(decimal(-1, 1000, 2), "0.00");
        assert_eq!(decimal(365 * 7, 14, 1), "182.5");
        assert_eq!(decimal(5, 1, 1), "5.0");
    }
}
