//! The second path: a report recomputed from an export's JSON lines by the rules written in
//! docs/REPORTS.md, with plain loops over the records. It shares nothing with
//! `report::build` or the projector's fold: records are read as `serde_json::Value`, every
//! position is a tuple of strings, every figure a sum over a `Vec` of postings.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use stockpile_ledger::canonical;
use stockpile_ledger::domain::{Country, MaterialId, Reference};

/// (party, lot, location, programme)
type Position = (String, String, String, String);

struct Posting {
    at: i64,
    position: Position,
    delta: i64,
    /// The event kind of the movement, or of what a reversal reverses.
    kind: String,
    reversal: bool,
    reason: Option<String>,
}

/// A registration in force from `at` on; `seq` orders equal times.
struct Registration<T> {
    at: i64,
    seq: u64,
    key: String,
    value: T,
}

/// What the export says, read naively.
#[derive(Default)]
pub struct Log {
    parties: HashMap<String, (String, String)>,
    facilities: HashMap<String, String>,
    lots: HashMap<String, (String, String, u32)>,
    postings: Vec<Posting>,
    figures: Vec<Registration<u64>>,
    rules: Vec<Registration<(String, bool)>>,
    toggles: Vec<Registration<(bool, String)>>,
    head_seq: u64,
    head_hash: String,
    head_recorded: i64,
}

fn ns(text: &Value) -> i64 {
    let t: DateTime<Utc> = text.as_str().expect("a time").parse().expect("RFC 3339");
    t.timestamp_nanos_opt().expect("in range")
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("a string, got {v}")).to_string()
}

fn position(p: &Value) -> Position {
    (s(&p["party"]), s(&p["lot"]), s(&p["location"]), s(&p["programme"]))
}

/// Midnight UTC at the start of `d`, in ns.
fn midnight(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_nanos_opt().unwrap()
}

impl Log {
    pub fn read(export: &str) -> Log {
        let mut log = Log::default();
        let mut kinds: HashMap<u64, (String, Option<String>)> = HashMap::new();
        for line in export.lines().filter(|l| !l.is_empty()) {
            let record: Value = serde_json::from_str(line).expect("a JSON line");
            let body = &record["body"];
            let seq = body["seq"].as_u64().expect("seq");
            let at = ns(&body["occurred_at"]);
            let e = &body["event"];
            let kind = s(&e["kind"]);
            let mut post = |p: &Value, delta: i64, kind: &str, reason: Option<String>, reversal: bool| {
                log.postings.push(Posting { at, position: position(p), delta, kind: kind.into(), reversal, reason });
            };
            let g = |q: &Value| q["grams"].as_i64().expect("grams");
            match kind.as_str() {
                "acquired" => post(&e["to"], g(&e["quantity"]), "acquired", None, false),
                "stored" | "transferred" => {
                    post(&e["from"], -g(&e["quantity"]), &kind, None, false);
                    post(&e["to"], g(&e["quantity"]), &kind, None, false);
                }
                "released" => post(&e["from"], -g(&e["quantity"]), "released", Some(s(&e["reason"])), false),
                "converted" => {
                    post(&e["from"], -g(&e["consumed"]), "converted", None, false);
                    post(&e["to"], g(&e["produced"]), "converted", None, false);
                }
                "adjusted" => {
                    let sign = if e["direction"] == "increase" { 1 } else { -1 };
                    post(&e["at"], sign * g(&e["quantity"]), "adjusted", None, false);
                }
                "reversed" => {
                    let (target, reason) = kinds[&e["target_seq"].as_u64().unwrap()].clone();
                    for p in e["effects"]["postings"].as_array().unwrap() {
                        let sign = if p["direction"] == "increase" { 1 } else { -1 };
                        let grams = p["grams"].as_i64().unwrap();
                        post(&p["position"], sign * grams, &target, reason.clone(), true);
                    }
                }
                "party_registered" => {
                    let p = &e["party"];
                    log.parties.insert(s(&p["id"]), (s(&p["partner"]), s(&p["holder_type"])));
                }
                "facility_registered" => {
                    log.facilities.insert(s(&e["facility"]["id"]), s(&e["facility"]["country"]));
                }
                "figure_registered" => {
                    let key = format!("{}/{}/{}/{}", s(&e["figure"]), s(&e["partner"]), s(&e["material"]), e["year"]);
                    log.figures.push(Registration { at, seq, key, value: e["quantity"]["grams"].as_u64().unwrap() });
                }
                "release_rules_registered" => {
                    let key = format!("{}/{}", s(&e["partner"]), s(&e["material"]));
                    let value = (s(&e["text"]), e["confidential"].as_bool().unwrap());
                    log.rules.push(Registration { at, seq, key, value });
                }
                "withheld" | "unwithheld" => {
                    let key = format!("{}/{}", s(&e["party"]), s(&e["lot"]));
                    log.toggles.push(Registration { at, seq, key, value: (kind == "withheld", s(&e["reason"])) });
                }
                _ => {}
            }
            for spec in [&e["lot"]].into_iter().filter(|l| l.is_object()) {
                let lot = (s(&spec["material"]), s(&spec["form"]), spec["purity_ppm"].as_u64().unwrap() as u32);
                log.lots.insert(s(&spec["id"]), lot);
            }
            if kind != "reversed" {
                kinds.insert(seq, (kind.clone(), e.get("reason").filter(|_| kind == "released").map(s)));
            }
            log.head_seq = seq;
            log.head_hash = s(&record["hash"]);
            log.head_recorded = ns(&body["recorded_at"]);
        }
        log
    }
}

/// The registration of `key` in force before `cutoff`: the latest by (business time, seq).
fn in_force<'a, T>(list: &'a [Registration<T>], key: &str, cutoff: i64) -> Option<&'a Registration<T>> {
    list.iter().filter(|r| r.key == key && r.at < cutoff).max_by_key(|r| (r.at, r.seq))
}

/// Gross grams and the exact sum of grams × ppm.
#[derive(Clone, Copy, Default)]
struct Mass {
    gross: i128,
    ppm: i128,
}

impl Mass {
    fn add(&mut self, g: i64, ppm: u32) {
        self.gross += g as i128;
        self.ppm += g as i128 * ppm as i128;
    }
}

fn t(g: i64) -> String {
    format!("{}{}.{:06}", if g < 0 { "-" } else { "" }, g.unsigned_abs() / 1_000_000, g.unsigned_abs() % 1_000_000)
}

/// The four amounts; contained is truncated toward zero once, from the exact sum.
fn amounts(m: &Mass, into: &mut Map<String, Value>) {
    let (gross, contained) = (m.gross as i64, (m.ppm / 1_000_000) as i64);
    into.insert("gross_g".into(), json!(gross));
    into.insert("gross_t".into(), json!(t(gross)));
    into.insert("contained_g".into(), json!(contained));
    into.insert("contained_t".into(), json!(t(contained)));
}

fn with_amounts(mut fields: Map<String, Value>, m: &Mass) -> Value {
    amounts(m, &mut fields);
    Value::Object(fields)
}

/// `num / den` to `decimals` places, half away from zero: floor((2|num| + den) / 2den).
fn decimal(num: i128, den: i128, decimals: u32) -> String {
    let scaled = num.abs() * 10i128.pow(decimals);
    let q = (2 * scaled + den) / (2 * den);
    let sign = if num < 0 && q != 0 { "-" } else { "" };
    let unit = 10i128.pow(decimals);
    format!("{sign}{}.{:0w$}", q / unit, q % unit, w = decimals as usize)
}

#[derive(Default)]
struct MaterialSums {
    closing: Mass,
    opening: i64,
    year_ends: [Mass; 5],
    forms: BTreeMap<(String, u32), Mass>,
    holders: BTreeMap<u8, Mass>,
    locations: BTreeMap<(u8, String), Mass>,
    lines: BTreeMap<(u8, String), i64>,
}

const HOLDERS: [&str; 3] = ["public_authority", "public_undertaking", "mandated_operator"];

/// First and last day of a period: `2026`, `2026-H1`, `2026-Q3`, `2026-05`.
fn period_days(period: &str) -> (i32, NaiveDate, NaiveDate) {
    let year: i32 = period[..4].parse().unwrap();
    let (first, last) = match &period[4..] {
        "" => (1, 12),
        "-H1" => (1, 6),
        "-H2" => (7, 12),
        q if q.starts_with("-Q") => {
            let n: u32 = q[2..].parse().unwrap();
            (3 * n - 2, 3 * n)
        }
        m => {
            let n: u32 = m[1..].parse().unwrap();
            (n, n)
        }
    };
    let start = NaiveDate::from_ymd_opt(year, first, 1).unwrap();
    let after =
        if last == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, last + 1, 1) };
    (year, start, after.unwrap().pred_opt().unwrap())
}

/// The report of `partner` (ledger spelling) for `period` under `framework`, as JSON.
pub fn report(log: &Log, partner: &str, period: &str, framework: &str, scope: Option<&str>) -> Value {
    let reference = Reference::get();
    let p = reference.partner(&Country::new(partner)).expect("a reference partner");
    let spell = |code: &str| match (framework, reference.partner(&Country::new(code))) {
        ("EU", Some(p)) => p.eu_code.clone(),
        _ => code.to_string(),
    };
    let scope = scope.unwrap_or(match framework {
        "EU" => "strategic",
        "IEA" => "all",
        _ => "nato_defence_critical",
    });
    let in_scope = |material: &str| match reference.material(&MaterialId::new(material)) {
        None => scope == "all",
        Some(m) => match scope {
            "strategic" => m.crma_strategic,
            "critical" => m.crma_strategic || m.crma_critical,
            "all" => true,
            _ => m.nato_defence_critical == Some(true),
        },
    };
    let (year, first, last) = period_days(period);
    let (start, end) = (midnight(first), midnight(last.succ_opt().unwrap()));
    let year_ends: Vec<(NaiveDate, i64)> = (1..=5)
        .rev()
        .map(|k| {
            (
                NaiveDate::from_ymd_opt(year - k, 12, 31).unwrap(),
                midnight(NaiveDate::from_ymd_opt(year - k + 1, 1, 1).unwrap()),
            )
        })
        .collect();

    let mut by_position: BTreeMap<&Position, Vec<&Posting>> = BTreeMap::new();
    for posting in &log.postings {
        by_position.entry(&posting.position).or_default().push(posting);
    }
    let mut materials: BTreeMap<String, MaterialSums> = BTreeMap::new();
    let mut private: BTreeMap<String, Mass> = BTreeMap::new();
    let mut for_others: BTreeMap<(String, String), Mass> = BTreeMap::new();
    let mut withheld: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (pos, postings) in by_position {
        let (party, lot, location, programme) = pos;
        let (owner, holder) = &log.parties[party];
        let (material, form, ppm) = &log.lots[lot];
        let site = if location == "in_transit" { None } else { Some(&log.facilities[location]) };
        let programme_ok = framework == "EU" || programme == framework;
        if !((owner == partner || site.map(String::as_str) == Some(partner)) && programme_ok && in_scope(material)) {
            continue;
        }
        let balance = |cutoff: i64| postings.iter().filter(|x| x.at < cutoff).map(|x| x.delta).sum::<i64>();
        let closing = balance(end);
        // the toggle in force at the end, and the first withholding of its unbroken run
        let mut toggles: Vec<&Registration<(bool, String)>> =
            log.toggles.iter().filter(|r| r.key == format!("{party}/{lot}") && r.at < end).collect();
        toggles.sort_by_key(|r| (r.at, r.seq));
        let withholding = match toggles.last() {
            Some(last) if last.value.0 => {
                let run = toggles.iter().rev().take_while(|r| r.value.0).last().unwrap();
                Some((run.at, last.value.1.clone()))
            }
            _ => None,
        };
        if owner != partner {
            if withholding.is_none() && closing != 0 {
                for_others.entry((material.clone(), owner.clone())).or_default().add(closing, *ppm);
            }
            continue;
        }
        if holder == "private" {
            if withholding.is_none() && closing != 0 {
                private.entry(material.clone()).or_default().add(closing, *ppm);
            }
            continue;
        }
        if let Some((since, reason)) = withholding {
            if postings.iter().any(|x| x.at < end) {
                let date = DateTime::<Utc>::from_timestamp_nanos(since).date_naive().to_string();
                withheld.insert((material.clone(), date, reason));
            }
            continue;
        }
        let m = materials.entry(material.clone()).or_default();
        for (i, (_, cutoff)) in year_ends.iter().enumerate() {
            m.year_ends[i].add(balance(*cutoff), *ppm);
        }
        if closing != 0 {
            m.closing.add(closing, *ppm);
            m.forms.entry((form.clone(), *ppm)).or_default().add(closing, *ppm);
            let h = HOLDERS.iter().position(|x| x == holder).unwrap() as u8;
            m.holders.entry(h).or_default().add(closing, *ppm);
            let place = match site {
                None => (2, "in_transit".to_string()),
                Some(c) if c == partner => (0, c.clone()),
                Some(c) => (1, c.clone()),
            };
            m.locations.entry(place).or_default().add(closing, *ppm);
        }
        for x in postings.iter().filter(|x| x.at < end) {
            if x.at < start {
                m.opening += x.delta;
                continue;
            }
            // a reversal counts on its target's line: the target's posting had the other sign
            let target_up = (x.delta > 0) != x.reversal;
            let line = match x.kind.as_str() {
                "acquired" => (0, String::new()),
                "transferred" if target_up => (1, String::new()),
                "transferred" => (2, String::new()),
                "converted" if target_up => (3, String::new()),
                "converted" => (4, String::new()),
                "released" => (5, x.reason.clone().unwrap_or_else(|| "unrecorded".into())),
                "adjusted" => (6, String::new()),
                _ => (7, String::new()),
            };
            *m.lines.entry(line).or_default() += x.delta;
        }
    }
    materials.retain(|_, m| {
        m.closing.gross != 0
            || m.opening != 0
            || m.year_ends.iter().any(|y| y.gross != 0)
            || m.lines.values().any(|g| *g != 0)
    });

    let previous = year - 1;
    let days = if NaiveDate::from_ymd_opt(previous, 2, 29).is_some() { 366 } else { 365 };
    let mut material_reports = Vec::new();
    for (id, m) in &materials {
        let figure =
            |kind: &str| in_force(&log.figures, &format!("{kind}/{partner}/{id}/{previous}"), end).map(|r| r.value);
        let ratio = |figure: Option<u64>, scale: i128, decimals: u32, what: &str| match figure {
            None => {
                json!({"status": "not_registered", "year": previous, "note": format!("no {what} figure for {previous} was registered by the end of {last}: register it with `stockpile register` and --occurred-at on or before {last}")})
            }
            Some(0) => {
                json!({"status": "zero", "year": previous, "figure_g": 0, "figure_t": t(0), "note": format!("the registered {what} of {previous} is zero")})
            }
            Some(f) => json!({"status": "registered", "year": previous, "figure_g": f, "figure_t": t(f as i64),
                "value": decimal(m.closing.gross * scale, f as i128, decimals), "note": format!("gross stock against {what} of {previous}")}),
        };
        let rules = match in_force(&log.rules, &format!("{partner}/{id}"), end) {
            None => {
                json!({"status": "not_registered", "text": format!("no release, allocation and distribution rules were registered by the end of {last}")})
            }
            Some(r) if r.value.1 => {
                json!({"status": "confidential", "text": "release, allocation and distribution rules are not disclosed: disclosure would endanger confidential information (CRMA Art. 22(2)(c))"})
            }
            Some(r) => json!({"status": "published", "text": r.value.0}),
        };
        let mut movements = vec![json!({"line": "opening", "gross_g": m.opening, "gross_t": t(m.opening)})];
        let names = [
            "acquired",
            "transferred_in",
            "transferred_out",
            "converted_in",
            "converted_out",
            "released",
            "adjusted",
            "relocated",
        ];
        for (i, name) in names.iter().enumerate() {
            let i = i as u8;
            let lines: Vec<(&String, i64)> =
                m.lines.iter().filter(|((l, _), _)| *l == i).map(|((_, r), g)| (r, *g)).collect();
            if i == 5 {
                for (reason, g) in lines {
                    movements.push(json!({"line": name, "reason": reason, "gross_g": g, "gross_t": t(g)}));
                }
            } else {
                let g = lines.first().map_or(0, |(_, g)| *g);
                movements.push(json!({"line": name, "gross_g": g, "gross_t": t(g)}));
            }
        }
        let closing = m.closing.gross as i64;
        movements.push(json!({"line": "closing", "gross_g": closing, "gross_t": t(closing)}));
        let reference = reference.material(&MaterialId::new(id.as_str()));
        let mut stock = Map::new();
        amounts(&m.closing, &mut stock);
        let obj = |pairs: Value| pairs.as_object().unwrap().clone();
        material_reports.push(json!({
            "material": id,
            "name": reference.map_or(id.clone(), |r| r.name.clone()),
            "crma_strategic": reference.is_some_and(|r| r.crma_strategic),
            "crma_critical": reference.is_some_and(|r| r.crma_critical),
            "stock": stock,
            "consumption": ratio(figure("consumption"), 100, 2, "annual consumption"),
            "days_of_cover": ratio(figure("net_imports"), days, 1, "annual net imports"),
            "forms": m.forms.iter().map(|((form, ppm), mass)| with_amounts(obj(json!({"form": form, "purity_ppm": ppm,
                "purity_pct": format!("{}.{:04}", ppm / 10_000, ppm % 10_000)})), mass)).collect::<Vec<_>>(),
            "history": year_ends.iter().zip(&m.year_ends).map(|((d, _), mass)| with_amounts(obj(json!({"date": d.to_string()})), mass)).collect::<Vec<_>>(),
            "release_rules": rules,
            "holders": m.holders.iter().map(|(h, mass)| with_amounts(obj(json!({"holder_type": HOLDERS[*h as usize]})), mass)).collect::<Vec<_>>(),
            "locations": m.locations.iter().map(|((order, country), mass)| {
                let placement = ["home", "abroad", "in_transit"][*order as usize];
                let country = if *order == 2 { country.clone() } else { spell(country) };
                with_amounts(obj(json!({"country": country, "placement": placement})), mass)
            }).collect::<Vec<_>>(),
            "movements": movements,
        }));
    }
    let obj = |pairs: Value| pairs.as_object().unwrap().clone();
    let body = json!({
        "framework": framework,
        "partner": spell(partner),
        "partner_name": p.name,
        "period": period,
        "period_start": first.to_string(),
        "period_end": last.to_string(),
        "material_scope": scope,
        "programmes": if framework == "EU" { json!(["EU", "IEA", "NATO", "national"]) } else { json!([framework]) },
        "materials": material_reports,
        "private_stocks": private.iter().map(|(m, mass)| with_amounts(obj(json!({"material": m})), mass)).collect::<Vec<_>>(),
        "held_for_others": for_others.iter().map(|((m, owner), mass)| with_amounts(obj(json!({"material": m, "owner": spell(owner)})), mass)).collect::<Vec<_>>(),
        "withheld": withheld.iter().map(|(m, since, reason)| json!({"material": m, "since": since, "reason": reason})).collect::<Vec<_>>(),
    });
    let body_sha256 = canonical::hex(&canonical::sha256(&canonical::to_vec(&body).unwrap()));
    json!({
        "header": {
            "report_id": format!("{framework}-{}-{period}-{}", spell(partner), log.head_seq),
            "framework": framework,
            "partner": spell(partner),
            "period": period,
            "cut_seq": log.head_seq,
            "chain_head": log.head_hash,
            "body_sha256": body_sha256,
            "provisional": log.head_recorded < end,
        },
        "body": body,
    })
}

/// Business days of the year before `period`'s (for a leap-year check in the test).
pub fn days_of_previous_year(period: &str) -> u32 {
    let (year, _, _) = period_days(period);
    NaiveDate::from_ymd_opt(year - 1, 12, 31).unwrap().ordinal()
}
