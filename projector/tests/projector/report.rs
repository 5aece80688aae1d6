//! The Commission stock report over a real ledger: a scenario whose figures are worked out
//! by hand below, determinism across a rebuild, and the withheld, private and held-for-others
//! cases.

use super::harness::Harness;
use stockpile_ledger::domain::{
    Action, AdjustReason, Amount, ConvertInto, Direction, EventId, FigureKind, Form, LotId, Programme, ReleaseReason,
    Unit,
};
use stockpile_ledger::testkit::{amount, at, command, holding, lot};
use stockpile_ledger::Outcome;
use stockpile_projector::report::{self, Framework, MaterialReport, MaterialScope, Report, ReportError, ReportRequest};
use stockpile_projector::Projector;
use Programme::{National, Nato};

fn t(text: &str) -> Amount {
    amount(text, Unit::T)
}

fn acquire(lot_id: &str, material: &str, form: Form, ppm: u32, to: (&str, &str, Programme), q: &str) -> Action {
    Action::Acquire {
        lot: lot(lot_id, material, form, ppm, "JP"),
        to: holding(to.0, to.1, to.2),
        quantity: t(q),
        supplier: None,
        contract: None,
        price: None,
    }
}

fn admin(h: &mut Harness, id: &str, occurred_at: &str, action: Action) {
    let signed = h.world.admin.sign(command(id, at(occurred_at), action));
    let out = h.submit(vec![signed]);
    assert!(matches!(out[..], [Outcome::Appended { .. }]), "{id}: {out:?}");
}

/// The scenario. Gallium of nl-covra (a mandated operator, so in scope), by hand:
///
/// - 2023-03-01 ga-1 acquired, 10 t metal at 99.99 % → year-ends 2023..2025 hold 10 t;
/// - 2026-02-01 ga-2 acquired, 4 t oxide at 74.4 %                        acquired     +4 t
/// - 2026-02-15 ga-1 adjusted down 0.2 t (back-dated: recorded near the end) adjusted −0.2 t
/// - 2026-03-01 ga-2 converted, 4 t → ga-3 2.9 t metal at 99.999 %  converted −4 t / +2.9 t
/// - 2026-03-15 ga-1 3 t stored abroad at be-antwerp (same holder)         relocated     0
/// - 2026-03-20 ga-1 1 t transferred to de-rohstoff at de-hamburg     transferred_out −1 t
/// - 2026-05-10 ga-1 0.5 t released, emergency drawdown                   released  −0.5 t
/// - 2026-06-01 ga-3 0.1 t sold, then reversed (recorded last)        released (sale) 0
/// - 2026-08-01 ga-4 acquired, 1 t: after the period, not in 2026-H1.
///
/// Closing 2026-06-30: ga-1 10 − 0.2 − 1 − 0.5 = 8.3 t (5.3 t at home, 3 t in BE), ga-3
/// 2.9 t: 11.2 t gross. Contained: 8.3 t × 0.9999 + 2.9 t × 0.99999 = 8 299 170 g +
/// 2 899 971 g = 11 199 141 g. Against a 2025 consumption of 40 t: 28.00 %. Against 2025 net
/// imports of 36.5 t (0.1 t a day): 112.0 days.
///
/// Cobalt of nl-mod (20 t, 2025) is withheld from 2026-04-01: in no figure, one notification.
/// Tungsten of nl-mod, 1 t in the NATO programme. Gallium of nl-private (5 t) is private;
/// gallium of de-rohstoff at nl-rotterdam (2 t) is held on NL territory for DE.
fn scenario() -> Harness {
    let mut h = Harness::new();
    h.clock.set(at("2026-12-31T00:00:00Z"));
    let covra = |h: &mut Harness, id: &str, when: &str, a: Action| h.ok("nl-covra", id, when, a);
    admin(&mut h, "fig-cons", "2026-01-01", figure(FigureKind::Consumption, "40"));
    admin(&mut h, "fig-imp", "2026-01-01", figure(FigureKind::NetImports, "36.5"));
    let rules = |material: &str, text: &str, confidential: bool| Action::RegisterReleaseRules {
        partner: "NL".into(),
        material: material.into(),
        text: text.into(),
        confidential,
    };
    admin(
        &mut h,
        "rules-ga",
        "2026-01-01",
        rules("gallium", "Released by ministerial order to NL industry first.", false),
    );
    admin(&mut h, "rules-w", "2026-01-01", rules("tungsten", "Classified allocation plan.", true));
    covra(
        &mut h,
        "acq-ga1",
        "2023-03-01",
        acquire("ga-1", "gallium", Form::Metal, 999_900, ("nl-covra", "nl-vlissingen", National), "10"),
    );
    h.ok(
        "nl-mod",
        "acq-co1",
        "2025-06-01",
        acquire("co-1", "cobalt", Form::Hydroxide, 300_000, ("nl-mod", "nl-rotterdam", Nato), "20"),
    );
    h.ok(
        "nl-private",
        "acq-gap",
        "2026-01-10",
        acquire("ga-p", "gallium", Form::Metal, 999_000, ("nl-private", "nl-rotterdam", National), "5"),
    );
    h.ok(
        "de-rohstoff",
        "acq-gade",
        "2026-02-01",
        acquire("ga-de", "gallium", Form::Metal, 999_990, ("de-rohstoff", "nl-rotterdam", National), "2"),
    );
    covra(
        &mut h,
        "acq-ga2",
        "2026-02-01",
        acquire("ga-2", "gallium", Form::Oxide, 744_000, ("nl-covra", "nl-vlissingen", National), "4"),
    );
    h.ok(
        "nl-mod",
        "acq-w",
        "2026-02-10",
        acquire("w-1", "tungsten", Form::Metal, 999_500, ("nl-mod", "nl-rotterdam", Nato), "1"),
    );
    let from = holding("nl-covra", "nl-vlissingen", National);
    covra(
        &mut h,
        "conv-ga2",
        "2026-03-01",
        Action::Convert {
            lot: LotId::new("ga-2"),
            from: from.clone(),
            consumed: t("4"),
            into: ConvertInto {
                id: LotId::new("ga-3"),
                form: Form::Metal,
                purity_ppm: 999_990,
                to: from.location.clone(),
                certificate: None,
            },
            produced: t("2.9"),
        },
    );
    covra(
        &mut h,
        "store-ga1",
        "2026-03-15",
        Action::Store {
            lot: LotId::new("ga-1"),
            party: "nl-covra".into(),
            programme: National,
            from: from.location.clone(),
            to: "be-antwerp".into(),
            quantity: t("3"),
        },
    );
    covra(
        &mut h,
        "xfer-ga1",
        "2026-03-20",
        Action::Transfer {
            lot: LotId::new("ga-1"),
            from: from.clone(),
            to: holding("de-rohstoff", "de-hamburg", National),
            quantity: t("1"),
        },
    );
    admin(
        &mut h,
        "withhold-co1",
        "2026-04-01",
        Action::Withhold {
            party: "nl-mod".into(),
            lot: LotId::new("co-1"),
            reason: "defence stock: disclosure would harm national security".into(),
        },
    );
    let release = |lot_id: &str, q: &str, reason| Action::Release {
        lot: LotId::new(lot_id),
        from: holding("nl-covra", "nl-vlissingen", National),
        quantity: t(q),
        reason,
        recipient: "NL industry".into(),
    };
    covra(&mut h, "rel-ga1", "2026-05-10", release("ga-1", "0.5", ReleaseReason::EmergencyDrawdown));
    covra(&mut h, "rel-ga3", "2026-06-01", release("ga-3", "0.1", ReleaseReason::Sale));
    covra(
        &mut h,
        "acq-ga4",
        "2026-08-01",
        acquire("ga-4", "gallium", Form::Metal, 999_900, ("nl-covra", "nl-vlissingen", National), "1"),
    );
    // recorded last, dated back into the period
    covra(
        &mut h,
        "adj-ga1",
        "2026-02-15",
        Action::Adjust {
            lot: LotId::new("ga-1"),
            at: from.clone(),
            direction: Direction::Decrease,
            quantity: t("0.2"),
            reason: AdjustReason::StockTake,
            note: "stock-take found less".into(),
        },
    );
    covra(
        &mut h,
        "rev-rel-ga3",
        "2026-06-02",
        Action::Reverse { target: EventId::new("rel-ga3"), reason: "sale cancelled".into() },
    );
    h
}

fn figure(kind: FigureKind, tonnes: &str) -> Action {
    Action::RegisterFigure {
        figure: kind,
        partner: "NL".into(),
        material: "gallium".into(),
        year: 2025,
        quantity: t(tonnes),
    }
}

fn request(partner: &str, period: &str, framework: Framework) -> ReportRequest {
    ReportRequest { partner: partner.into(), period: period.parse().unwrap(), framework, materials: None }
}

fn build(p: &Projector, req: &ReportRequest) -> Report {
    report::build(&p.snapshot(), req).expect("report")
}

fn material<'r>(r: &'r Report, id: &str) -> &'r MaterialReport {
    r.body.materials.iter().find(|m| m.material == id).unwrap_or_else(|| panic!("{id} in the report"))
}

fn lines(m: &MaterialReport) -> Vec<(String, Option<String>, i64)> {
    m.movements.iter().map(|l| (l.line.clone(), l.reason.clone(), l.gross_g)).collect()
}

fn line(name: &str, reason: Option<&str>, g: i64) -> (String, Option<String>, i64) {
    (name.to_string(), reason.map(str::to_string), g)
}

#[test]
fn the_eu_report_matches_the_figures_worked_out_by_hand() {
    let h = scenario();
    let (_dir, p) = h.fresh_projector();
    let r = build(&p, &request("NL", "2026-H1", Framework::Eu));
    assert_eq!(r.header.report_id, format!("EU-NL-2026-H1-{}", h.head()));
    assert_eq!(r.header.cut_seq, h.head());
    assert_eq!(r.header.chain_head, stockpile_ledger::canonical::hex(&h.state().head.hash));

    let materials: Vec<&str> = r.body.materials.iter().map(|m| m.material.as_str()).collect();
    assert_eq!(materials, ["gallium", "tungsten"], "cobalt is withheld, so in no figure");
    let ga = material(&r, "gallium");
    assert_eq!((ga.stock.gross_g, ga.stock.contained_g), (11_200_000, 11_199_141));
    assert_eq!((ga.stock.gross_t.as_str(), ga.stock.contained_t.as_str()), ("11.200000", "11.199141"));
    assert_eq!((ga.consumption.status.as_str(), ga.consumption.year), ("registered", 2025));
    assert_eq!(ga.consumption.value.as_deref(), Some("28.00"));
    assert_eq!(ga.days_of_cover.value.as_deref(), Some("112.0"));
    assert_eq!(ga.days_of_cover.figure_g, Some(36_500_000));
    assert_eq!(
        lines(ga),
        vec![
            line("opening", None, 10_000_000),
            line("acquired", None, 4_000_000),
            line("transferred_in", None, 0),
            line("transferred_out", None, -1_000_000),
            line("converted_in", None, 2_900_000),
            line("converted_out", None, -4_000_000),
            line("released", Some("emergency_drawdown"), -500_000),
            line("released", Some("sale"), 0),
            line("adjusted", None, -200_000),
            line("relocated", None, 0),
            line("closing", None, 11_200_000),
        ]
    );
    let forms: Vec<(&str, u32, i64, i64)> =
        ga.forms.iter().map(|f| (f.form.as_str(), f.purity_ppm, f.amounts.gross_g, f.amounts.contained_g)).collect();
    assert_eq!(forms, [("metal", 999_900, 8_300_000, 8_299_170), ("metal", 999_990, 2_900_000, 2_899_971)]);
    assert_eq!(ga.forms[0].purity_pct, "99.9900");
    let history: Vec<(&str, i64)> = ga.history.iter().map(|y| (y.date.as_str(), y.amounts.gross_g)).collect();
    assert_eq!(
        history,
        [
            ("2021-12-31", 0),
            ("2022-12-31", 0),
            ("2023-12-31", 10_000_000),
            ("2024-12-31", 10_000_000),
            ("2025-12-31", 10_000_000)
        ]
    );
    let places: Vec<(&str, &str, i64, i64)> = ga
        .locations
        .iter()
        .map(|l| (l.country.as_str(), l.placement.as_str(), l.amounts.gross_g, l.amounts.contained_g))
        .collect();
    assert_eq!(places, [("NL", "home", 8_200_000, 8_199_441), ("BE", "abroad", 3_000_000, 2_999_700)]);
    let holders: Vec<(&str, i64)> = ga.holders.iter().map(|x| (x.holder_type.as_str(), x.amounts.gross_g)).collect();
    assert_eq!(holders, [("mandated_operator", 11_200_000)], "the private holder is not counted");
    assert_eq!(ga.release_rules.status, "published");
    assert_eq!(ga.release_rules.text, "Released by ministerial order to NL industry first.");

    let w = material(&r, "tungsten");
    assert_eq!((w.stock.gross_g, w.stock.contained_g), (1_000_000, 999_500));
    assert_eq!(w.release_rules.status, "confidential");
    assert!(!w.release_rules.text.contains("Classified"), "confidential rules text is not disclosed");
    assert_eq!(w.consumption.status, "not_registered");
    assert!(w.consumption.value.is_none() && w.consumption.note.contains("no annual consumption figure"));

    let private: Vec<(&str, i64, i64)> =
        r.body.private_stocks.iter().map(|p| (p.material.as_str(), p.amounts.gross_g, p.amounts.contained_g)).collect();
    assert_eq!(private, [("gallium", 5_000_000, 4_995_000)]);
    let others: Vec<(&str, &str, i64)> =
        r.body.held_for_others.iter().map(|o| (o.material.as_str(), o.owner.as_str(), o.amounts.gross_g)).collect();
    assert_eq!(others, [("gallium", "DE", 2_000_000)]);
    assert_eq!(r.body.withheld.len(), 1);
    let notice = &r.body.withheld[0];
    assert_eq!((notice.material.as_str(), notice.since.as_str()), ("cobalt", "2026-04-01"));
    assert!(notice.reason.contains("national security"));
    let json = String::from_utf8(report::render::json(&r).unwrap()).unwrap();
    assert!(!json.contains("co-1") && !json.contains("nl-mod"), "the notification names no lot or holder");
}

#[test]
fn periods_cut_at_their_end_and_withholding_counts_from_its_business_date() {
    let h = scenario();
    let (_dir, p) = h.fresh_projector();
    // Q1: before the withholding, cobalt is reported (20 t); the sale and ga-4 are not yet.
    let q1 = build(&p, &request("NL", "2026-Q1", Framework::Eu));
    assert_eq!(material(&q1, "cobalt").stock.gross_g, 20_000_000);
    assert!(q1.body.withheld.is_empty());
    // ga-1 10 − 0.2 − 1 (no release yet) + ga-3 2.9
    assert_eq!(material(&q1, "gallium").stock.gross_g, 11_700_000);
    // The whole year counts ga-4 (acquired in August).
    let year = build(&p, &request("NL", "2026", Framework::Eu));
    assert_eq!(material(&year, "gallium").stock.gross_g, 12_200_000);
    // A month with no movement: opening = closing, every flow zero.
    let may = build(&p, &request("NL", "2026-04", Framework::Eu));
    let ga = material(&may, "gallium");
    assert!(ga.movements.iter().filter(|l| l.line != "opening" && l.line != "closing").all(|l| l.gross_g == 0));
    // The NATO variant counts only NATO-earmarked holdings: tungsten, not gallium.
    let nato = build(&p, &request("NL", "2026-H1", Framework::Nato));
    let materials: Vec<&str> = nato.body.materials.iter().map(|m| m.material.as_str()).collect();
    assert_eq!(materials, ["tungsten"]);
    assert_eq!(nato.body.programmes, ["NATO"]);
    // Materials asked beyond the strategic list; here all held ones are strategic anyway.
    let mut all = request("NL", "2026-H1", Framework::Eu);
    all.materials = Some(MaterialScope::All);
    assert_eq!(build(&p, &all).body.materials.len(), 2);
}

#[test]
fn the_same_log_gives_the_same_bytes_live_reopened_and_rebuilt() {
    let h = scenario();
    let req = request("NL", "2026-H1", Framework::Eu);
    let (dir, p) = h.fresh_projector();
    let first = report::render::json(&build(&p, &req)).unwrap();
    assert_eq!(report::render::json(&build(&p, &req)).unwrap(), first, "twice from the same views");
    drop(p);
    let reopened = Projector::open(dir.path()).expect("reopen");
    assert_eq!(report::render::json(&build(&reopened, &req)).unwrap(), first, "from the persisted views");
    let (_d2, rebuilt) = h.fresh_projector();
    assert!(reopened.snapshot() == rebuilt.snapshot(), "journal, withholdings and rules survive the store");
    let again = build(&rebuilt, &req);
    assert_eq!(report::render::json(&again).unwrap(), first, "rebuilt from zero");
    let body = stockpile_ledger::canonical::to_vec(&again.body).unwrap();
    assert_eq!(again.header.body_sha256, stockpile_ledger::canonical::hex(&stockpile_ledger::canonical::sha256(&body)));
    assert_eq!(report::render::csv(&again), report::render::csv(&build(&reopened, &req)));
    assert_eq!(report::render::markdown(&again), report::render::markdown(&build(&reopened, &req)));
}

#[test]
fn a_back_dated_event_changes_the_report_of_its_period_and_its_hash() {
    let mut h = scenario();
    let req = request("NL", "2026-H1", Framework::Eu);
    let (_d, p) = h.fresh_projector();
    let before = build(&p, &req);
    h.ok(
        "nl-covra",
        "adj-late",
        "2026-01-20",
        Action::Adjust {
            lot: LotId::new("ga-1"),
            at: holding("nl-covra", "nl-vlissingen", National),
            direction: Direction::Increase,
            quantity: t("0.05"),
            reason: AdjustReason::MeasurementCorrection,
            note: "re-weighed".into(),
        },
    );
    let (_d2, p2) = h.fresh_projector();
    let after = build(&p2, &req);
    assert_eq!(material(&after, "gallium").stock.gross_g, 11_250_000);
    let adjusted = material(&after, "gallium").movements.iter().find(|l| l.line == "adjusted").unwrap().gross_g;
    assert_eq!(adjusted, -150_000);
    assert_ne!(after.header.body_sha256, before.header.body_sha256);
    assert_eq!(after.header.cut_seq, before.header.cut_seq + 1);
}

#[test]
fn greece_is_el_on_commission_output_and_bad_requests_say_what_to_fix() {
    let h = scenario();
    let (_d, p) = h.fresh_projector();
    let gr = build(&p, &request("GR", "2026-H1", Framework::Eu));
    assert_eq!((gr.header.partner.as_str(), gr.body.partner.as_str()), ("EL", "EL"));
    assert!(gr.header.report_id.starts_with("EU-EL-2026-H1-"));
    assert!(gr.body.materials.is_empty());
    assert_eq!(build(&p, &request("GR", "2026-H1", Framework::Nato)).header.partner, "GR");
    let err = report::build(&p.snapshot(), &request("XX", "2026", Framework::Eu)).unwrap_err();
    assert_eq!(err, ReportError::UnknownPartner { partner: "XX".into() });
    // Norway is in NATO and the IEA but not the EU.
    let err = report::build(&p.snapshot(), &request("NO", "2026", Framework::Eu)).unwrap_err();
    assert!(matches!(err, ReportError::NotMember { framework: "EU", .. }), "{err}");
    let empty = stockpile_projector::Views::new();
    assert_eq!(report::build(&empty, &request("NL", "2026", Framework::Eu)), Err(ReportError::EmptyLedger));
}

#[test]
fn a_report_whose_period_has_not_ended_by_ledger_time_is_provisional_in_every_rendering() {
    // the scenario's ledger time is 2026-12-31T00:00Z: 2026 has a day to go, 2026-H1 is over
    let h = scenario();
    let (_d, p) = h.fresh_projector();
    let year = build(&p, &request("NL", "2026", Framework::Eu));
    let half = build(&p, &request("NL", "2026-H1", Framework::Eu));
    assert!(year.header.provisional && !half.header.provisional);
    let notice = report::render::PROVISIONAL_NOTICE;
    let json = String::from_utf8(report::render::json(&year).unwrap()).unwrap();
    assert!(json.contains("\"provisional\":true"), "{json}");
    assert!(report::render::markdown(&year).contains(&format!("**{notice}**")));
    assert!(report::render::csv(&year)
        .lines()
        .nth(1)
        .is_some_and(|l| l.starts_with("header,,status,") && l.contains(notice)));
    assert!(!report::render::markdown(&half).contains(notice) && !report::render::csv(&half).contains(notice));
    assert!(report::render::csv(&half).contains("header,,provisional,,,,,,false"));
}

#[test]
fn figures_and_rules_apply_as_in_force_at_the_end_of_the_period() {
    let mut h = scenario();
    // recorded now, dated after 2026-H1: the half-year keeps the figure and rules of its end
    admin(&mut h, "fig-cons-2", "2026-09-01", figure(FigureKind::Consumption, "80"));
    let rules = Action::RegisterReleaseRules {
        partner: "NL".into(),
        material: "gallium".into(),
        text: "Allocated pro rata from September.".into(),
        confidential: false,
    };
    admin(&mut h, "rules-ga-2", "2026-09-01", rules);
    let (_d, p) = h.fresh_projector();
    let half = build(&p, &request("NL", "2026-H1", Framework::Eu));
    let ga = material(&half, "gallium");
    assert_eq!((ga.consumption.figure_g, ga.consumption.value.as_deref()), (Some(40_000_000), Some("28.00")));
    assert_eq!(ga.release_rules.text, "Released by ministerial order to NL industry first.");
    let year = build(&p, &request("NL", "2026", Framework::Eu));
    let ga = material(&year, "gallium");
    assert_eq!((ga.consumption.figure_g, ga.consumption.value.as_deref()), (Some(80_000_000), Some("15.25")));
    assert_eq!(ga.release_rules.text, "Allocated pro rata from September.");
    // a month before any registration: none in force, and the note says how to fix it
    let dec = build(&p, &request("NL", "2025-12", Framework::Eu));
    let ga = material(&dec, "gallium");
    assert_eq!(
        (ga.release_rules.status.as_str(), ga.consumption.status.as_str()),
        ("not_registered", "not_registered")
    );
    assert!(ga.consumption.note.contains("--occurred-at on or before 2025-12-31"), "{}", ga.consumption.note);
}

#[test]
fn a_reversed_transfer_reduces_the_line_it_was_on_in_the_period_of_the_reversal() {
    let mut h = scenario();
    // xfer-ga1 moved 1 t from nl-covra to de-rohstoff on 2026-03-20; the receiver reverses it
    h.ok(
        "de-rohstoff",
        "rev-xfer-ga1",
        "2026-07-05",
        Action::Reverse { target: EventId::new("xfer-ga1"), reason: "delivered to the wrong party".into() },
    );
    let (_d, p) = h.fresh_projector();
    let q3 = build(&p, &request("NL", "2026-Q3", Framework::Eu));
    let gross = |name: &str| material(&q3, "gallium").movements.iter().find(|l| l.line == name).unwrap().gross_g;
    assert_eq!((gross("transferred_out"), gross("transferred_in")), (1_000_000, 0));
    let h1 = build(&p, &request("NL", "2026-H1", Framework::Eu));
    let out = material(&h1, "gallium").movements.iter().find(|l| l.line == "transferred_out").unwrap().gross_g;
    assert_eq!(out, -1_000_000, "the transfer stays in the period it happened in");
}

#[test]
fn a_restated_withholding_keeps_its_first_date() {
    let mut h = scenario();
    let withhold =
        |reason: &str| Action::Withhold { party: "nl-mod".into(), lot: LotId::new("co-1"), reason: reason.into() };
    admin(&mut h, "withhold-co1-again", "2026-05-01", withhold("restated: still classified"));
    let (_d, p) = h.fresh_projector();
    let r = build(&p, &request("NL", "2026-H1", Framework::Eu));
    let notices: Vec<(&str, &str)> = r.body.withheld.iter().map(|w| (w.since.as_str(), w.reason.as_str())).collect();
    assert_eq!(notices, [("2026-04-01", "restated: still classified")]);
}
