//! The policy file schema: reads one resolved tree (every dated parameter already replaced by
//! its value on one date) into a `onestop_core::policy::Policy` snapshot.
//!
//! `docs/policy-format.md` documents every key read here; keep the two in step.

use std::sync::Arc;

use jiff::civil::Date;
use onestop_core::claim::{
    AssistanceCategory, CatalogClass, Category, FilingKind, HospitalLevel, Region, Scheme,
    VisitType,
};
use onestop_core::money::{Fen, Ratio, Rounding, UnitPrice};
use onestop_core::policy::{
    AccountRule, Accumulate, Adjustment, Band, BandBasis, Base, Catalog, CatalogItem, Component,
    CrossRegion, Deductible, DeductibleAmount, DeductiblePer, FirstSelfPayRoundAt, Param, Policy,
    RoundAt, Rule, Selector, SourceId, Tier, TierKind, Unfiled,
};
use onestop_core::split::{BANDS_MAX, TIERS_MAX};

use crate::error::{PolicyError, PolicyErrorCode};
use crate::read::{Reader, Table};
use crate::tree::{Kind, Node};

pub const RULES_MAX: usize = 64;
pub const ADJUSTMENTS_MAX: usize = 16;
pub const CATALOG_ITEMS_MAX: usize = 100_000;

/// The `[policy]` header: never dated, it says what the file is and when it is in force.
#[derive(Clone, Debug)]
pub struct Header {
    pub region: Region,
    pub name: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    /// The line `valid_from` is written on, for errors about the file's period.
    pub valid_from_line: u32,
}

pub const TOP_KEYS: &[&str] =
    &["policy", "catalog", "personal_account", "cross_region", "diseases", "tiers"];
const HEADER_KEYS: &[&str] = &[
    "region",
    "name",
    "valid_from",
    "valid_to",
    "rounding",
    "needy_assistance",
    "source",
    "notes",
];

/// Reads the `[policy]` header. Only `rounding` and `needy_assistance` may be dated (they are
/// read per snapshot); the region, name and range are fixed for the file.
pub fn header(reader: &Reader, root: &Node) -> Result<Header, PolicyError> {
    let mut top = Table::open(reader, root, "", TOP_KEYS)?;
    let (node, path) =
        top.require(reader, "policy", "the [policy] header: region, name, valid_from")?;
    let mut table = Table::open(reader, node, &path, HEADER_KEYS)?;
    let (node, path) =
        table.require(reader, "region", "six-digit division code such as \"110000\"")?;
    let text = match &node.kind {
        Kind::Str(text) => text.clone(),
        Kind::Int(value) => value.to_string(),
        _ => return Err(reader.wrong_type(node, &path, "a six-digit division code")),
    };
    let region = Region::parse(&text).ok_or_else(|| {
        reader.invalid(
            node,
            &path,
            format!("`{text}` is not a six-digit division code such as 110000"),
        )
    })?;
    let (node, path) = table.require(reader, "name", "the region's name")?;
    let name = reader.text(node, &path)?.to_owned();
    let (node, path) = table.require(reader, "valid_from", "the first day the file is in force")?;
    let valid_from = reader.date(node, &path)?;
    let valid_from_line = node.line;
    let valid_to = match table.get("valid_to") {
        Some((node, path)) => {
            let to = reader.date(node, &path)?;
            if to < valid_from {
                return Err(reader.invalid(
                    node,
                    &path,
                    format!("valid_to {to} is before valid_from {valid_from}"),
                ));
            }
            Some(to)
        }
        None => None,
    };
    for key in ["rounding", "needy_assistance", "source", "notes"] {
        table.get(key);
    }
    Ok(Header { region, name, valid_from, valid_to, valid_from_line })
}

/// Reads one snapshot, valid from `from` to `to`, out of a resolved tree.
pub fn snapshot(
    reader: &mut Reader,
    root: &Node,
    header: &Header,
    from: Date,
    to: Option<Date>,
) -> Result<Policy, PolicyError> {
    let mut top = Table::open(reader, root, "", TOP_KEYS)?;
    let (policy_node, policy_path) = top.require(reader, "policy", "the [policy] header")?;
    let (rounding, needy_assistance) = dated_header(reader, policy_node, &policy_path)?;
    let catalog = match top.get("catalog") {
        Some((node, path)) => Some(catalog(reader, node, &path)?),
        None => None,
    };
    let account = match top.get("personal_account") {
        Some((node, path)) => Some(account(reader, node, &path)?),
        None => None,
    };
    let cross_region = match top.get("cross_region") {
        Some((node, path)) => Some(cross_region(reader, node, &path)?),
        None => None,
    };
    // The groups first: the tiers' selectors name them.
    reader.diseases.clear();
    let diseases = match top.get("diseases") {
        Some((node, path)) => crate::diseases::diseases(reader, node, &path)?,
        None => Vec::new(),
    };
    let tiers = match top.get("tiers") {
        Some((node, path)) => tiers(reader, node, &path)?,
        None => Vec::new(),
    };
    Ok(Policy {
        cross_region,
        region: header.region,
        name: header.name.clone(),
        valid_from: from,
        valid_to: to,
        rounding,
        catalog,
        tiers,
        account,
        needy_assistance,
        diseases,
        sources: std::mem::take(&mut reader.sources),
    })
}

/// The header's parameters that may be dated: the rounding and the needy assistance lists.
fn dated_header(
    reader: &mut Reader,
    policy_node: &Node,
    policy_path: &str,
) -> Result<(Param<Rounding>, Param<u32>), PolicyError> {
    let mut head = Table::open(reader, policy_node, policy_path, HEADER_KEYS)?;
    let rounding = match head.get("rounding") {
        Some((node, path)) => {
            let value = reader.name(
                node,
                &path,
                |t| Rounding::ALL.into_iter().find(|r| r.name() == t),
                "half_up, half_even, down, up",
            )?;
            Param::new(value, reader.source(node, &path))
        }
        None => Param::new(Rounding::HalfUp, reader.source(policy_node, policy_path)),
    };
    let needy_assistance = match head.get("needy_assistance") {
        Some((node, path)) => {
            let mut bits = 0;
            for (item, item_path) in reader.one_or_many(node, &path) {
                bits |= reader
                    .name(
                        item,
                        &item_path,
                        AssistanceCategory::parse,
                        &AssistanceCategory::codes(),
                    )?
                    .bit();
            }
            Param::new(bits, reader.source(node, &path))
        }
        None => Param::new(0, reader.source(policy_node, policy_path)),
    };
    Ok((rounding, needy_assistance))
}

/// Percentage points held as millionths, printed as written: `10`, `2.5`.
fn points_text(millionths: i64) -> String {
    let ratio = Ratio::from_millionths(u32::try_from(millionths.unsigned_abs()).unwrap_or(0));
    let sign = if millionths < 0 { "-" } else { "" };
    format!("{sign}{}", ratio.to_string().trim_end_matches('%'))
}

/// The largest cut the national rules allow, in points, by filing kind (医保发〔2022〕22号: at
/// most 10 points for referral and emergency, at most 20 for other temporary visitors).
fn cut_max(kind: FilingKind) -> i64 {
    match kind {
        FilingKind::Referral | FilingKind::Emergency => 10,
        FilingKind::OtherTemporary => 20,
        FilingKind::LongTermResident | FilingKind::ResettledRetiree => 0,
    }
}

const CROSS_REGION_KEYS: &[&str] =
    &["cuts", "first_self_pay", "unfiled", "emergency_filing_days", "approval_required", "notes"];

/// `[cross_region]`: the insured region's rules for care elsewhere.
fn cross_region(reader: &mut Reader, node: &Node, path: &str) -> Result<CrossRegion, PolicyError> {
    let mut table = Table::open(reader, node, path, CROSS_REGION_KEYS)?;
    table.get("notes");
    let source = reader.source(node, path);
    let cuts = cross_region_cuts(reader, &mut table, source)?;
    let first_self_pay = cross_region_first_self_pay(reader, &mut table, source, &cuts)?;
    let unfiled = unfiled(reader, &mut table, source, first_self_pay[FilingKind::ALL.len()])?;
    let emergency_filing_days = match table.get("emergency_filing_days") {
        Some((node, path)) => {
            let days = reader.integer(node, &path, (0, 365))?;
            Param::new(u16::try_from(days).unwrap_or(0), reader.source(node, &path))
        }
        None => Param::new(0, source),
    };
    let approval_required = match table.get("approval_required") {
        Some((node, path)) => {
            let mut bits = 0;
            for (item, item_path) in reader.one_or_many(node, &path) {
                bits |=
                    reader.name(item, &item_path, FilingKind::parse, &FilingKind::codes())?.bit();
            }
            Param::new(bits, reader.source(node, &path))
        }
        None => Param::new(0, source),
    };
    Ok(CrossRegion { cuts, unfiled, first_self_pay, emergency_filing_days, approval_required })
}

/// `cuts`: points off the basic fund's ratios by filing kind, within the national limits.
fn cross_region_cuts(
    reader: &mut Reader,
    table: &mut Table<'_>,
    source: SourceId,
) -> Result<Vec<Param<i64>>, PolicyError> {
    let mut cuts: Vec<Param<i64>> = FilingKind::ALL.iter().map(|_| Param::new(0, source)).collect();
    let Some((cuts_node, cuts_path)) = table.get("cuts") else { return Ok(cuts) };
    let codes: Vec<&str> = FilingKind::ALL.iter().map(|k| k.code()).collect();
    let mut by_kind = Table::open(reader, cuts_node, &cuts_path, &codes)?;
    for kind in FilingKind::ALL {
        let Some((node, path)) = by_kind.get(kind.code()) else { continue };
        let points = reader.points(node, &path)?;
        if !(0..=cut_max(*kind) * 10_000).contains(&points.value) {
            return Err(reader.invalid(
                node,
                &path,
                format!(
                    "a cut for {} is 0 to {} points (national rules)",
                    kind.code(),
                    cut_max(*kind)
                ),
            ));
        }
        cuts[*kind as usize] = points;
    }
    Ok(cuts)
}

/// `first_self_pay`: the share of the in-scope amount paid first (先行自付) by filing kind, and
/// `unfiled` for care without a filing. With a kind's cut it stays within the national limit.
fn cross_region_first_self_pay(
    reader: &mut Reader,
    table: &mut Table<'_>,
    source: SourceId,
    cuts: &[Param<i64>],
) -> Result<Vec<Param<Ratio>>, PolicyError> {
    let mut shares: Vec<Param<Ratio>> =
        (0..=FilingKind::ALL.len()).map(|_| Param::new(Ratio::ZERO, source)).collect();
    let Some((shares_node, shares_path)) = table.get("first_self_pay") else { return Ok(shares) };
    let mut keys: Vec<&str> = FilingKind::ALL.iter().map(|k| k.code()).collect();
    keys.push("unfiled");
    let mut by_kind = Table::open(reader, shares_node, &shares_path, &keys)?;
    for (slot, key) in keys.iter().enumerate() {
        let Some((node, path)) = by_kind.get(key) else { continue };
        let share = reader.ratio(node, &path, Ratio::ONE)?;
        if let Some(kind) = FilingKind::ALL.get(slot) {
            let most = cut_max(*kind) * 10_000;
            let together = cuts[slot].value + i64::from(share.value.millionths());
            if together > most {
                return Err(reader.invalid(
                    node,
                    &path,
                    format!(
                        "for {key} the cut ({} points) and the share paid first ({}) together \
                         lower the basic fund by {} points, more than the {} the national rules \
                         allow",
                        points_text(cuts[slot].value),
                        share.value,
                        points_text(together),
                        cut_max(*kind)
                    ),
                ));
            }
        }
        shares[slot] = share;
    }
    Ok(shares)
}

/// `unfiled`: care elsewhere without a filing is refused (`"reject"`, the default) or settled
/// with this many points off. A share paid first for unfiled care means it is settled.
fn unfiled(
    reader: &mut Reader,
    table: &mut Table<'_>,
    source: SourceId,
    unfiled_share: Param<Ratio>,
) -> Result<Param<Unfiled>, PolicyError> {
    let settled = unfiled_share.value != Ratio::ZERO;
    match table.get("unfiled") {
        Some((node, path)) => match &node.kind {
            Kind::Str(text) if text == "reject" && settled => Err(reader.invalid(
                node,
                &path,
                "`unfiled = \"reject\"` refuses unfiled care, yet `first_self_pay.unfiled` \
                 settles it: write one or the other"
                    .to_owned(),
            )),
            Kind::Str(text) if text == "reject" => {
                Ok(Param::new(Unfiled::Reject, reader.source(node, &path)))
            }
            _ => {
                let points = reader.points(node, &path)?;
                if points.value < 0 {
                    let message = "`unfiled` is \"reject\" or a cut of 0 to 100 points";
                    return Err(reader.invalid(node, &path, message.to_owned()));
                }
                Ok(Param::new(Unfiled::Cut(points.value), points.source))
            }
        },
        None if settled => Ok(Param::new(Unfiled::Cut(0), unfiled_share.source)),
        None => Ok(Param::new(Unfiled::Reject, source)),
    }
}

fn catalog(reader: &mut Reader, node: &Node, path: &str) -> Result<Catalog, PolicyError> {
    let keys = ["class_b_first_self_pay", "first_self_pay_round_at", "items"];
    let mut table = Table::open(reader, node, path, &keys)?;
    let (ratio_node, ratio_path) = table.require(
        reader,
        "class_b_first_self_pay",
        "the class-B first self-pay ratio, such as \"10%\", or a table by scheme",
    )?;
    let (employee, resident) = match &ratio_node.kind {
        Kind::Table(_) => {
            let mut by_scheme =
                Table::open(reader, ratio_node, &ratio_path, &["employee", "resident"])?;
            let (node, path) = by_scheme.require(reader, "employee", "the ratio for employees")?;
            let employee = reader.ratio(node, &path, Ratio::ONE)?;
            let (node, path) = by_scheme.require(reader, "resident", "the ratio for residents")?;
            let resident = reader.ratio(node, &path, Ratio::ONE)?;
            (employee, resident)
        }
        _ => {
            let ratio = reader.ratio(ratio_node, &ratio_path, Ratio::ONE)?;
            (ratio, ratio)
        }
    };
    let first_self_pay_round_at = match table.get("first_self_pay_round_at") {
        Some((node, path)) => {
            let at = reader.name(
                node,
                &path,
                |t| match t {
                    "line" => Some(FirstSelfPayRoundAt::Line),
                    "bill" => Some(FirstSelfPayRoundAt::Bill),
                    _ => None,
                },
                "line, bill",
            )?;
            Param::new(at, reader.source(node, &path))
        }
        None => Param::new(FirstSelfPayRoundAt::Line, reader.source(node, path)),
    };
    let mut items = Vec::new();
    if let Some((node, path)) = table.get("items") {
        let entries = reader.tables(node, &path)?;
        if entries.len() > CATALOG_ITEMS_MAX {
            return Err(reader.error(
                PolicyErrorCode::LimitExceeded,
                node,
                &path,
                format!("{} catalog items; at most {CATALOG_ITEMS_MAX}", entries.len()),
            ));
        }
        for (entry, entry_path) in entries {
            items.push(catalog_item(reader, entry, &entry_path)?);
        }
    }
    items.sort_by(|a, b| a.code.cmp(&b.code));
    if let Some(pair) = items.windows(2).find(|pair| pair[0].code == pair[1].code) {
        return Err(reader.invalid(
            node,
            &format!("{path}.items"),
            format!("catalog item code `{}` appears twice", pair[0].code),
        ));
    }
    Ok(Catalog {
        class_b_first_self_pay_employee: employee,
        first_self_pay_round_at,
        class_b_first_self_pay_resident: resident,
        items,
    })
}

fn catalog_item(reader: &mut Reader, node: &Node, path: &str) -> Result<CatalogItem, PolicyError> {
    let mut table = Table::open(
        reader,
        node,
        path,
        &["code", "name", "class", "first_self_pay", "price_limit"],
    )?;
    let (code_node, code_path) = table.require(reader, "code", "the item's catalog code")?;
    let code = reader.text(code_node, &code_path)?.to_owned();
    table.get("name");
    let class = match table.get("class") {
        Some((node, path)) => {
            let class = reader.name(node, &path, CatalogClass::parse, &CatalogClass::codes())?;
            Some(Param::new(class, reader.source(node, &path)))
        }
        None => None,
    };
    let first_self_pay = match table.get("first_self_pay") {
        Some((node, path)) => Some(reader.ratio(node, &path, Ratio::ONE)?),
        None => None,
    };
    let price_limit = match table.get("price_limit") {
        Some((node, path)) => {
            let text = match &node.kind {
                Kind::Str(text) | Kind::Float(text) => text.clone(),
                Kind::Int(value) => value.to_string(),
                _ => return Err(reader.wrong_type(node, &path, "a unit price such as \"35.00\"")),
            };
            let price = UnitPrice::parse(&text)
                .map_err(|error| reader.invalid(node, &path, format!("`{text}` {error}")))?;
            Some(Param::new(price, reader.source(node, &path)))
        }
        None => None,
    };
    Ok(CatalogItem { code, class, first_self_pay, price_limit })
}

/// Component names, with the groups `in_scope`, `out_of_scope` and `all`.
fn components(reader: &Reader, node: &Node, path: &str) -> Result<Vec<Component>, PolicyError> {
    let mut out: Vec<Component> = Vec::new();
    // The name that brought each component in, for the error on a second one.
    let mut named_by: Vec<&str> = Vec::new();
    for (item, item_path) in reader.one_or_many(node, path) {
        let name = reader.text(item, &item_path)?;
        let group: Vec<Component> = match name {
            "in_scope" => Component::IN_SCOPE.to_vec(),
            "out_of_scope" => {
                vec![Component::ClassBFirstSelfPay, Component::OverLimit, Component::OutsideCatalog]
            }
            "all" => Component::ALL.to_vec(),
            other => match Component::parse(other) {
                Some(component) => vec![component],
                None => {
                    let known: Vec<&str> = Component::ALL.iter().map(|c| c.code()).collect();
                    return Err(reader.invalid(
                        item,
                        &item_path,
                        format!(
                            "unknown component `{other}`; expected in_scope, out_of_scope, all \
                             or one of: {}",
                            known.join(", ")
                        ),
                    ));
                }
            },
        };
        for component in group {
            if let Some(at) = out.iter().position(|c| *c == component) {
                let code = component.code();
                let why = match (named_by[at], name) {
                    (earlier, _) if earlier != code => format!(": `{earlier}` already counts it"),
                    (_, group) if group != code => format!(": `{group}` counts it too"),
                    _ => String::new(),
                };
                return Err(reader.invalid(
                    item,
                    &item_path,
                    format!("component `{code}` named twice{why}"),
                ));
            }
            out.push(component);
            named_by.push(name);
        }
    }
    if out.is_empty() {
        return Err(reader.invalid(node, path, "name at least one component".to_owned()));
    }
    Ok(out)
}

fn account(reader: &mut Reader, node: &Node, path: &str) -> Result<AccountRule, PolicyError> {
    let mut table = Table::open(reader, node, path, &["covers", "categories"])?;
    let source = reader.source(node, path);
    let (covers_node, covers_path) =
        table.require(reader, "covers", "the components the account may pay")?;
    let covers = components(reader, covers_node, &covers_path)?;
    let categories = match table.get("categories") {
        Some((node, path)) => {
            let mut bits = 0;
            for (item, item_path) in reader.one_or_many(node, &path) {
                bits |= reader.name(item, &item_path, Category::parse, &Category::codes())?.bit();
            }
            bits
        }
        None => Category::InService.bit() | Category::Retired.bit(),
    };
    Ok(AccountRule { source, categories, covers })
}

const TIER_KEYS: &[&str] = &["id", "kind", "name", "accumulate", "base", "rules", "notes"];

fn tiers(reader: &mut Reader, node: &Node, path: &str) -> Result<Vec<Tier>, PolicyError> {
    let entries = reader.tables(node, path)?;
    if entries.len() > TIERS_MAX {
        return Err(reader.error(
            PolicyErrorCode::LimitExceeded,
            node,
            path,
            format!("{} tiers; at most {TIERS_MAX}", entries.len()),
        ));
    }
    let mut tiers: Vec<Tier> = Vec::with_capacity(entries.len());
    for (entry, entry_path) in entries {
        let tier = tier(reader, entry, &entry_path, &tiers)?;
        tiers.push(tier);
    }
    Ok(tiers)
}

fn tier(
    reader: &mut Reader,
    node: &Node,
    path: &str,
    earlier: &[Tier],
) -> Result<Tier, PolicyError> {
    let mut table = Table::open(reader, node, path, TIER_KEYS)?;
    let source = reader.source(node, path);
    let id = tier_id(reader, &mut table, earlier)?;
    let kind = tier_kind(reader, &mut table, earlier)?;
    table.get("name");
    table.get("notes");
    let accumulate = match table.get("accumulate") {
        Some((node, path)) => reader.name(
            node,
            &path,
            |t| match t {
                "year" => Some(Accumulate::Year),
                "visit" => Some(Accumulate::Visit),
                _ => None,
            },
            "year, visit",
        )?,
        None => Accumulate::Year,
    };
    let base = base(reader, &mut table, kind, earlier, source)?;
    let rules = rules(reader, &mut table, kind)?;
    if kind.is_coinsurance() {
        check_coinsurance_apart(reader, node, path, &rules, earlier)?;
    }
    Ok(Tier { id, kind, source, base, accumulate, rules })
}

/// Reads a tier's `id`. Accumulators and later layers' `base.after` name tiers by id, so an id
/// is short, plain and unique.
fn tier_id(
    reader: &Reader,
    table: &mut Table<'_>,
    earlier: &[Tier],
) -> Result<Arc<str>, PolicyError> {
    let (id_node, id_path) = table.require(reader, "id", "a unique id such as \"basic\"")?;
    let id = reader.text(id_node, &id_path)?;
    let id_ok = !id.is_empty()
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !id_ok {
        return Err(reader.invalid(
            id_node,
            &id_path,
            format!("tier id `{id}` must be 1 to 32 of a-z, 0-9 and _"),
        ));
    }
    if earlier.iter().any(|t| &*t.id == id) {
        return Err(reader.error(
            PolicyErrorCode::TiersInvalid,
            id_node,
            &id_path,
            format!("tier id `{id}` is used twice"),
        ));
    }
    Ok(Arc::from(id))
}

/// Reads a tier's `kind`. Coinsurance tiers split the in-scope amount that layers are then
/// computed on, so no coinsurance tier may follow a layer.
fn tier_kind(
    reader: &Reader,
    table: &mut Table<'_>,
    earlier: &[Tier],
) -> Result<TierKind, PolicyError> {
    let (kind_node, kind_path) =
        table.require(reader, "kind", "the tier kind such as \"basic_pool\"")?;
    let kinds: Vec<&str> = TierKind::ALL.iter().map(|k| k.code()).collect();
    let kind = reader.name(kind_node, &kind_path, TierKind::parse, &kinds.join(", "))?;
    if kind.is_coinsurance() && earlier.iter().any(|t| !t.kind.is_coinsurance()) {
        return Err(reader.error(
            PolicyErrorCode::TiersInvalid,
            kind_node,
            &kind_path,
            format!(
                "`{}` tiers split the in-scope amount and must come before every layer",
                kind.code()
            ),
        ));
    }
    Ok(kind)
}

/// Reads a tier's `[[tiers.rules]]`. A visit is settled by at most one rule of a tier, so no two
/// rules may match the same person and visit.
fn rules(
    reader: &mut Reader,
    table: &mut Table<'_>,
    kind: TierKind,
) -> Result<Vec<Rule>, PolicyError> {
    let (rules_node, rules_path) =
        table.require(reader, "rules", "at least one [[tiers.rules]]")?;
    let entries = reader.tables(rules_node, &rules_path)?;
    if entries.is_empty() || entries.len() > RULES_MAX {
        return Err(reader.error(
            PolicyErrorCode::LimitExceeded,
            rules_node,
            &rules_path,
            format!("{} rules; a tier has 1 to {RULES_MAX}", entries.len()),
        ));
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(entries.len());
    for (entry, entry_path) in entries {
        let rule = rule(reader, entry, &entry_path, kind)?;
        if let Some((index, _)) =
            rules.iter().enumerate().find(|(_, r)| r.when.overlaps(&rule.when))
        {
            let line = reader.sources[rules[index].source.0 as usize].line;
            return Err(reader.error(
                PolicyErrorCode::RulesOverlap,
                entry,
                &entry_path,
                format!(
                    "this rule and {rules_path}[{index}] (line {line}) both match some person \
                     and visit; narrow one of their `when` selectors"
                ),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Checks a coinsurance tier's rules against those of earlier coinsurance tiers: each splits
/// the in-scope amount, so two applying to one visit would split it twice.
fn check_coinsurance_apart(
    reader: &Reader,
    node: &Node,
    path: &str,
    rules: &[Rule],
    earlier: &[Tier],
) -> Result<(), PolicyError> {
    for other in earlier.iter().filter(|t| t.kind.is_coinsurance()) {
        for (index, rule) in rules.iter().enumerate() {
            if other.rules.iter().any(|r| r.when.overlaps(&rule.when)) {
                return Err(reader.error(
                    PolicyErrorCode::RulesOverlap,
                    node,
                    &format!("{path}.rules[{index}]"),
                    format!(
                        "this rule overlaps a rule of coinsurance tier `{}`: only one \
                         coinsurance tier may apply to a visit",
                        other.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn base(
    reader: &mut Reader,
    table: &mut Table<'_>,
    kind: TierKind,
    earlier: &[Tier],
    tier_source: SourceId,
) -> Result<Base, PolicyError> {
    let Some((node, path)) = table.get("base") else {
        let after = (0..earlier.len()).filter(|i| !earlier[*i].kind.is_coinsurance()).collect();
        return Ok(Base { components: Component::IN_SCOPE.to_vec(), after, source: tier_source });
    };
    if kind.is_coinsurance() {
        return Err(reader.error(
            PolicyErrorCode::UnknownKey,
            node,
            &path,
            "coinsurance tiers take the in-scope amount; `base` is for layers".to_owned(),
        ));
    }
    let source = reader.source(node, &path);
    let mut base = Table::open(reader, node, &path, &["components", "after"])?;
    let components = match base.get("components") {
        Some((node, path)) => components(reader, node, &path)?,
        None => Component::IN_SCOPE.to_vec(),
    };
    let after = match base.get("after") {
        Some((node, path)) => {
            let mut after = Vec::new();
            for (item, item_path) in reader.one_or_many(node, &path) {
                let id = reader.text(item, &item_path)?;
                let Some(index) = earlier.iter().position(|t| &*t.id == id) else {
                    return Err(reader.error(
                        PolicyErrorCode::TiersInvalid,
                        item,
                        &item_path,
                        format!(
                            "`{id}` is not an earlier tier; a layer's base can only deduct tiers \
                             computed before it"
                        ),
                    ));
                };
                if earlier[index].kind.is_coinsurance() {
                    return Err(reader.error(
                        PolicyErrorCode::TiersInvalid,
                        item,
                        &item_path,
                        format!(
                            "`{id}` is a coinsurance tier; its payment is already outside every \
                             layer's base"
                        ),
                    ));
                }
                after.push(index);
            }
            after
        }
        None => (0..earlier.len()).filter(|i| !earlier[*i].kind.is_coinsurance()).collect(),
    };
    Ok(Base { components, after, source })
}

const RULE_KEYS: &[&str] = &[
    "when",
    "pool",
    "cap_pool",
    "deductible",
    "threshold",
    "band_basis",
    "bands",
    "ratio",
    "round_at",
    "cap",
    "pool_cap",
    "cap_per_visit",
    "cap_per_day",
    "ceiling",
    "adjust",
    "notes",
];

fn rule(reader: &mut Reader, node: &Node, path: &str, kind: TierKind) -> Result<Rule, PolicyError> {
    let mut table = Table::open(reader, node, path, RULE_KEYS)?;
    let source = reader.source(node, path);
    let when = match table.get("when") {
        Some((node, path)) => selector(reader, node, &path)?,
        None => Selector::any(),
    };
    table.get("notes");
    let pool = rule_pool(reader, &mut table, kind, &when)?;
    let cap_pool = match table.get("cap_pool") {
        Some((node, path)) => Arc::from(pool_name(reader, node, &path)?),
        None => Arc::clone(&pool),
    };
    let (deductible, threshold) = deductible_or_threshold(reader, &mut table, kind)?;
    let band_basis = band_basis(reader, &mut table, source)?;
    let nominal = match (&deductible, threshold) {
        (Some(deductible), _) => deductible.amount.nominal(),
        (None, Some(threshold)) => threshold.value,
        (None, None) => Fen::ZERO,
    };
    let first_lower = match band_basis.value {
        BandBasis::Cumulative => nominal,
        BandBasis::AboveThreshold => Fen::ZERO,
    };
    let bands = bands(reader, &mut table, node, first_lower)?;
    let round_at = round_at(reader, &mut table, source)?;
    let Caps { cap, pool_cap, pool_cap_pool, cap_per_visit, cap_per_day } =
        caps(reader, &mut table, &pool, &cap_pool)?;
    let ceiling = ceiling(reader, &mut table, kind)?;
    let adjustments = match table.get("adjust") {
        Some((node, path)) => adjustments(reader, node, &path, kind)?,
        None => Vec::new(),
    };
    Ok(Rule {
        source,
        when,
        pool,
        cap_pool,
        deductible,
        threshold,
        band_basis,
        bands,
        round_at,
        cap,
        pool_cap,
        pool_cap_pool,
        cap_per_visit,
        cap_per_day,
        ceiling,
        adjustments,
    })
}

/// A rule's limits on what it pays.
struct Caps {
    /// The year's, in `cap_pool`.
    cap: Option<Param<Fen>>,
    /// The year's, in `pool_cap_pool`.
    pool_cap: Option<Param<Fen>>,
    pool_cap_pool: Arc<str>,
    cap_per_visit: Option<Param<Fen>>,
    cap_per_day: Option<Param<Fen>>,
}

/// Reads a rule's caps. `pool_cap` is an amount counted in the rule's pool, or
/// `{ amount, pool }` counted in the pool it names; either way not in `cap_pool`.
fn caps(
    reader: &mut Reader,
    table: &mut Table<'_>,
    pool: &Arc<str>,
    cap_pool: &str,
) -> Result<Caps, PolicyError> {
    let cap = match table.get("cap") {
        Some((node, path)) => Some(cap_amount(reader, node, &path)?),
        None => None,
    };
    let (pool_cap, pool_cap_pool) = match table.get("pool_cap") {
        Some((node, path)) => {
            let (amount, own) = match &node.kind {
                Kind::Table(_) => {
                    let mut entry = Table::open(reader, node, &path, &["amount", "pool"])?;
                    let what = "the sub-limit, such as \"5000\"";
                    let (amount_node, amount_path) = entry.require(reader, "amount", what)?;
                    let amount = cap_amount(reader, amount_node, &amount_path)?;
                    let what = "the pool where the sub-limit counts, such as \"chronic\"";
                    let (pool_node, pool_path) = entry.require(reader, "pool", what)?;
                    (amount, Arc::from(pool_name(reader, pool_node, &pool_path)?))
                }
                _ => (cap_amount(reader, node, &path)?, Arc::clone(pool)),
            };
            if let Some(cap) = cap.filter(|cap| amount.value > cap.value) {
                return Err(reader.invalid(
                    node,
                    &path,
                    format!(
                        "`pool_cap` {} is above the rule's `cap` {}, so it could never limit \
                         anything: a sub-limit is smaller than the cap it sits inside",
                        amount.value, cap.value
                    ),
                ));
            }
            if &*own == cap_pool {
                return Err(reader.error(
                    PolicyErrorCode::ValueInvalid,
                    node,
                    &path,
                    format!(
                        "`pool_cap` caps what the rule pays in pool `{own}`, inside the `cap` \
                         of a `cap_pool` shared with other rules; `{own}` is the `cap_pool` \
                         itself, so write `cap` alone, or name another pool: `pool_cap = {{ \
                         amount = \"5000\", pool = \"chronic\" }}`"
                    ),
                ));
            }
            (Some(amount), own)
        }
        None => (None, Arc::clone(pool)),
    };
    let mut money = |key: &str| match table.get(key) {
        Some((node, path)) => cap_amount(reader, node, &path).map(Some),
        None => Ok(None),
    };
    let cap_per_visit = money("cap_per_visit")?;
    let cap_per_day = money("cap_per_day")?;
    Ok(Caps { cap, pool_cap, pool_cap_pool, cap_per_visit, cap_per_day })
}

/// A cap's amount, above zero: a cap of 0 would pay nothing, and some publications write 0
/// for 不封顶 (no cap), so either reading of it is better written otherwise.
fn cap_amount(reader: &mut Reader, node: &Node, path: &str) -> Result<Param<Fen>, PolicyError> {
    let amount = reader.money(node, path)?;
    if amount.value == Fen::ZERO {
        let key = match path.rsplit('.').next().unwrap_or(path) {
            "amount" => "pool_cap",
            key => key,
        };
        return Err(reader.invalid(
            node,
            path,
            format!(
                "`{key}` is 0: for no cap (不封顶) leave `{key}` out; for a rule that pays \
                 nothing leave the rule out, or write its `ratio` as \"0%\""
            ),
        ));
    }
    Ok(amount)
}

/// Reads a coinsurance rule's `ceiling` (封顶线 written as a cost: the band position from which
/// the tier pays nothing, for a large-amount layer on `above_cap` to take over).
fn ceiling(
    reader: &mut Reader,
    table: &mut Table<'_>,
    kind: TierKind,
) -> Result<Option<Param<Fen>>, PolicyError> {
    match table.get("ceiling") {
        Some((node, path)) if !kind.is_coinsurance() => Err(reader.error(
            PolicyErrorCode::UnknownKey,
            node,
            &path,
            "a `ceiling` ends a coinsurance tier's bands (what lies above it is `above_cap`); a \
             layer's payment is limited by `cap`"
                .to_owned(),
        )),
        Some((node, path)) => Ok(Some(reader.money(node, &path)?)),
        None => Ok(None),
    }
}

/// Reads a rule's `pool`, the name its deductible, bands and cap count in. Layers default to
/// one pool for everything; a coinsurance rule defaults to its visit type, which is only
/// unambiguous when its selector names exactly one.
fn rule_pool(
    reader: &Reader,
    table: &mut Table<'_>,
    kind: TierKind,
    when: &Selector,
) -> Result<Arc<str>, PolicyError> {
    let pool: Arc<str> = match table.get("pool") {
        Some((node, path)) => Arc::from(pool_name(reader, node, &path)?),
        None if !kind.is_coinsurance() => Arc::from("all"),
        None => {
            let visits: Vec<&VisitType> =
                VisitType::ALL.iter().filter(|v| when.visits & v.bit() != 0).collect();
            match visits.as_slice() {
                [visit] => Arc::from(visit.code()),
                _ => {
                    return Err(reader.error(
                        PolicyErrorCode::MissingKey,
                        table.node,
                        &table.child_path("pool"),
                        "this rule covers several visit types: name the `pool` their \
                         deductible, bands and cap count in"
                            .to_owned(),
                    ));
                }
            }
        }
    };
    Ok(pool)
}

/// Reads what a rule pays above: coinsurance rules need a `deductible` and layers may have a
/// `threshold`; each kind rejects the other's key, since it would silently mean nothing.
fn deductible_or_threshold(
    reader: &mut Reader,
    table: &mut Table<'_>,
    kind: TierKind,
) -> Result<(Option<Deductible>, Option<Param<Fen>>), PolicyError> {
    let deductible = match (table.get("deductible"), kind.is_coinsurance()) {
        (Some((node, path)), true) => Some(deductible(reader, node, &path)?),
        (None, true) => {
            return Err(reader.error(
                PolicyErrorCode::MissingKey,
                table.node,
                &table.child_path("deductible"),
                "coinsurance rules need a `deductible` (write { amount = \"0\" } for none)"
                    .to_owned(),
            ));
        }
        (Some((node, path)), false) => {
            return Err(reader.error(
                PolicyErrorCode::UnknownKey,
                node,
                &path,
                "layers have a `threshold`, not a `deductible`".to_owned(),
            ));
        }
        (None, false) => None,
    };
    let threshold = match (table.get("threshold"), kind.is_coinsurance()) {
        (Some((node, path)), false) => Some(reader.money(node, &path)?),
        (Some((node, path)), true) => {
            return Err(reader.error(
                PolicyErrorCode::UnknownKey,
                node,
                &path,
                "coinsurance rules have a `deductible`, not a `threshold`".to_owned(),
            ));
        }
        (None, _) => None,
    };
    Ok((deductible, threshold))
}

/// Reads `band_basis`: whether band bounds count from zero or from the deductible or threshold.
fn band_basis(
    reader: &mut Reader,
    table: &mut Table<'_>,
    rule_source: SourceId,
) -> Result<Param<BandBasis>, PolicyError> {
    let band_basis = match table.get("band_basis") {
        Some((node, path)) => {
            let basis = reader.name(
                node,
                &path,
                |t| match t {
                    "cumulative" => Some(BandBasis::Cumulative),
                    "above_threshold" | "above_deductible" => Some(BandBasis::AboveThreshold),
                    _ => None,
                },
                "cumulative, above_threshold (alias above_deductible)",
            )?;
            Param::new(basis, reader.source(node, &path))
        }
        None => Param::new(BandBasis::Cumulative, rule_source),
    };
    Ok(band_basis)
}

/// Reads `round_at`: whether each band's payment is rounded to the fen, or only their sum.
fn round_at(
    reader: &mut Reader,
    table: &mut Table<'_>,
    rule_source: SourceId,
) -> Result<Param<RoundAt>, PolicyError> {
    let round_at = match table.get("round_at") {
        Some((node, path)) => {
            let at = reader.name(
                node,
                &path,
                |t| match t {
                    "band" => Some(RoundAt::Band),
                    "tier" => Some(RoundAt::Tier),
                    _ => None,
                },
                "band, tier",
            )?;
            Param::new(at, reader.source(node, &path))
        }
        None => Param::new(RoundAt::Band, rule_source),
    };
    Ok(round_at)
}

fn pool_name(reader: &Reader, node: &Node, path: &str) -> Result<String, PolicyError> {
    let name = reader.text(node, path)?;
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(reader.invalid(node, path, format!("pool `{name}` must be 1 to 32 of a-z, 0-9 and _")))
    }
}

fn bands(
    reader: &mut Reader,
    table: &mut Table<'_>,
    rule_node: &Node,
    first_lower: Fen,
) -> Result<Vec<Band>, PolicyError> {
    match (table.get("bands"), table.get("ratio")) {
        (Some(_), Some((node, path))) => Err(reader.error(
            PolicyErrorCode::BandsInvalid,
            node,
            &path,
            "write either `ratio` (one band) or `bands`, not both".to_owned(),
        )),
        (None, None) => Err(reader.error(
            PolicyErrorCode::MissingKey,
            rule_node,
            &table.child_path("bands"),
            "a rule needs `ratio` (one band) or `bands`".to_owned(),
        )),
        (None, Some((node, path))) => {
            Ok(vec![Band { to: None, ratio: reader.ratio(node, &path, Ratio::ONE)? }])
        }
        (Some((node, path)), None) => band_list(reader, node, &path, first_lower),
    }
}

/// Reads a `bands` array: 1 to `BANDS_MAX` bands, each starting where the previous one ends.
fn band_list(
    reader: &mut Reader,
    node: &Node,
    path: &str,
    first_lower: Fen,
) -> Result<Vec<Band>, PolicyError> {
    let entries = reader.tables(node, path)?;
    if entries.is_empty() || entries.len() > BANDS_MAX {
        return Err(reader.error(
            PolicyErrorCode::LimitExceeded,
            node,
            path,
            format!("{} bands; a rule has 1 to {BANDS_MAX}", entries.len()),
        ));
    }
    let count = entries.len();
    let mut bands: Vec<Band> = Vec::with_capacity(count);
    for (index, (entry, entry_path)) in entries.into_iter().enumerate() {
        let previous = bands.last().and_then(|b| b.to).map(|to| to.value);
        let last = index + 1 == count;
        let band = band(reader, entry, &entry_path, previous, first_lower, last)?;
        bands.push(band);
    }
    Ok(bands)
}

/// Reads one band. `previous` is where the band before it ends, `None` for the first band;
/// `last` says whether this is the final band, the only one left open.
fn band(
    reader: &mut Reader,
    entry: &Node,
    entry_path: &str,
    previous: Option<Fen>,
    first_lower: Fen,
    last: bool,
) -> Result<Band, PolicyError> {
    let mut band = Table::open(reader, entry, entry_path, &["from", "to", "ratio"])?;
    let lower = band_lower(reader, &mut band, previous, first_lower)?;
    let to = band_upper(reader, &mut band, lower, last)?;
    let (node, path) = band.require(reader, "ratio", "the ratio the tier pays in this band")?;
    let ratio = reader.ratio(node, &path, Ratio::ONE)?;
    Ok(Band { to, ratio })
}

/// A band's lower bound. Bands are contiguous, so `from` may be left out; written, it must be
/// where the previous band ends, or for the first band 0 or the deductible or threshold.
fn band_lower(
    reader: &mut Reader,
    band: &mut Table<'_>,
    previous: Option<Fen>,
    first_lower: Fen,
) -> Result<Fen, PolicyError> {
    let mut lower = previous.unwrap_or(Fen::ZERO);
    if let Some((node, path)) = band.get("from") {
        let from = reader.money(node, &path)?.value;
        let message = match previous {
            Some(expected) if from != expected => Some(format!(
                "band starts at {from} but should start at {expected}, where the previous band \
                 ends"
            )),
            None if !from.is_zero() && from != first_lower && first_lower.is_zero() => {
                Some(format!(
                    "the first band starts at {from} but should start at 0: with \
                     `band_basis = \"above_threshold\"` (or no deductible or threshold) \
                     bands count from the deductible or threshold, so \"from the deductible \
                     800 up to 20000\" is `{{ to = \"19200\" }}` on that basis, or \
                     `{{ from = \"800\", to = \"20000\" }}` with `band_basis = \"cumulative\"`"
                ))
            }
            None if !from.is_zero() && from != first_lower => Some(format!(
                "the first band starts at {from} but should start at 0 or at the \
                 deductible or threshold ({first_lower}): on the cumulative basis bands count \
                 the year's amount from zero, the deductible included"
            )),
            _ => None,
        };
        if let Some(message) = message {
            return Err(reader.error(PolicyErrorCode::BandsInvalid, node, &path, message));
        }
        lower = lower.max(from);
    }
    Ok(lower)
}

/// A band's upper bound `to`: above its lower bound, present on every band but the last, and
/// absent on the last, whose payment has no ceiling but the cap.
fn band_upper(
    reader: &mut Reader,
    band: &mut Table<'_>,
    lower: Fen,
    last: bool,
) -> Result<Option<Param<Fen>>, PolicyError> {
    match band.get("to") {
        Some((node, path)) => {
            let to = reader.money(node, &path)?;
            if last {
                return Err(reader.error(
                    PolicyErrorCode::BandsInvalid,
                    node,
                    &path,
                    "the last band is open: leave out its `to`".to_owned(),
                ));
            }
            if to.value <= lower {
                return Err(reader.error(
                    PolicyErrorCode::BandsInvalid,
                    node,
                    &path,
                    format!(
                        "band upper bound {} does not exceed its lower bound {lower}",
                        to.value
                    ),
                ));
            }
            Ok(Some(to))
        }
        None if !last => Err(reader.error(
            PolicyErrorCode::BandsInvalid,
            band.node,
            &band.path,
            "every band but the last needs `to`".to_owned(),
        )),
        None => Ok(None),
    }
}

fn deductible(reader: &mut Reader, node: &Node, path: &str) -> Result<Deductible, PolicyError> {
    let mut table = Table::open(
        reader,
        node,
        path,
        &["amount", "by_admission", "first", "step_down", "floor", "per"],
    )?;
    let amount = deductible_amount(reader, &mut table)?;
    let per = deductible_per(reader, &mut table, &amount)?;
    Ok(Deductible { per, amount })
}

/// Reads the deductible's amount, written in exactly one of three forms: a fixed `amount`, a
/// `by_admission` list, or a `first` amount that falls by `step_down` (to `floor`) per admission.
fn deductible_amount(
    reader: &mut Reader,
    table: &mut Table<'_>,
) -> Result<DeductibleAmount, PolicyError> {
    let amount = match (table.get("amount"), table.get("by_admission"), table.get("first")) {
        (Some((node, path)), None, None) => DeductibleAmount::Fixed(reader.money(node, &path)?),
        (None, Some((node, path)), None) => by_admission(reader, node, &path)?,
        (None, None, Some((node, path))) => {
            let first = reader.money(node, &path)?;
            let (node, path) = table.require(
                reader,
                "step_down",
                "how much each later admission's deductible falls",
            )?;
            let step = reader.money(node, &path)?;
            let floor = match table.get("floor") {
                Some((node, path)) => reader.money(node, &path)?,
                None => Param::new(Fen::ZERO, first.source),
            };
            DeductibleAmount::StepDown { first, step, floor }
        }
        (None, None, None) => {
            return Err(reader.error(
                PolicyErrorCode::MissingKey,
                table.node,
                &table.path,
                "a deductible needs `amount`, `by_admission` or `first` with `step_down`"
                    .to_owned(),
            ));
        }
        _ => {
            return Err(reader.invalid(
                table.node,
                &table.path,
                "write one of `amount`, `by_admission`, or `first` with `step_down`".to_owned(),
            ));
        }
    };
    Ok(amount)
}

/// Reads `by_admission`: the deductible of the first, second, ... admission of the year.
fn by_admission(
    reader: &mut Reader,
    node: &Node,
    path: &str,
) -> Result<DeductibleAmount, PolicyError> {
    let Kind::Array(items) = &node.kind else {
        return Err(reader.wrong_type(node, path, "an array of amounts, first admission first"));
    };
    if items.is_empty() || items.len() > 100 {
        return Err(reader.error(
            PolicyErrorCode::LimitExceeded,
            node,
            path,
            "list 1 to 100 deductibles, first admission first".to_owned(),
        ));
    }
    let mut table_amounts = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        table_amounts.push(reader.money(item, &format!("{path}[{index}]"))?);
    }
    Ok(DeductibleAmount::ByAdmission(table_amounts))
}

/// Reads `per`: what the deductible is met once for. Only a fixed zero deductible may leave it
/// out, as it then makes no difference.
fn deductible_per(
    reader: &mut Reader,
    table: &mut Table<'_>,
    amount: &DeductibleAmount,
) -> Result<Param<DeductiblePer>, PolicyError> {
    let per = match table.get("per") {
        Some((node, path)) => {
            let per = reader.name(
                node,
                &path,
                |t| match t {
                    "admission" => Some(DeductiblePer::Admission),
                    "year" => Some(DeductiblePer::Year),
                    "visit" => Some(DeductiblePer::Visit),
                    _ => None,
                },
                "admission, year, visit",
            )?;
            if per == DeductiblePer::Year && !matches!(amount, DeductibleAmount::Fixed(_)) {
                // Met once a year, it could not fall with each admission.
                let message = "a deductible that changes with the admission is met per \
                    admission: write `per = \"admission\"`, or a fixed `amount` for a yearly one"
                    .to_owned();
                return Err(reader.invalid(node, &path, message));
            }
            Param::new(per, reader.source(node, &path))
        }
        None if amount.nominal().is_zero() && matches!(amount, DeductibleAmount::Fixed(_)) => {
            Param::new(DeductiblePer::Visit, reader.source(table.node, &table.path))
        }
        None => {
            return Err(reader.error(
                PolicyErrorCode::MissingKey,
                table.node,
                &table.child_path("per"),
                "say whether the deductible applies per admission, year or visit".to_owned(),
            ));
        }
    };
    Ok(per)
}

fn adjustments(
    reader: &mut Reader,
    node: &Node,
    path: &str,
    kind: TierKind,
) -> Result<Vec<Adjustment>, PolicyError> {
    let entries = reader.tables(node, path)?;
    if entries.len() > ADJUSTMENTS_MAX {
        return Err(reader.error(
            PolicyErrorCode::LimitExceeded,
            node,
            path,
            format!("{} adjustments; at most {ADJUSTMENTS_MAX}", entries.len()),
        ));
    }
    let factor_key = if kind.is_coinsurance() { "deductible_factor" } else { "threshold_factor" };
    let mut out = Vec::with_capacity(entries.len());
    for (entry, entry_path) in entries {
        out.push(adjustment(reader, entry, &entry_path, factor_key)?);
    }
    Ok(out)
}

/// Reads one adjustment. `factor_key` is `deductible_factor` for coinsurance rules and
/// `threshold_factor` for layers, matching what the rule itself has.
fn adjustment(
    reader: &mut Reader,
    entry: &Node,
    entry_path: &str,
    factor_key: &str,
) -> Result<Adjustment, PolicyError> {
    let allowed = ["when", "ratio_points", "personal_share_factor", factor_key, "cap", "notes"];
    let mut table = Table::open(reader, entry, entry_path, &allowed)?;
    let source = reader.source(entry, entry_path);
    let when = match table.get("when") {
        Some((node, path)) => selector(reader, node, &path)?,
        None => Selector::any(),
    };
    let ratio_points = match table.get("ratio_points") {
        Some((node, path)) => Some(reader.points(node, &path)?),
        None => None,
    };
    let personal_share_factor = match table.get("personal_share_factor") {
        Some((node, path)) => Some(reader.ratio(node, &path, Ratio::ONE)?),
        None => None,
    };
    let threshold_factor = match table.get(factor_key) {
        Some((node, path)) => Some(reader.ratio(node, &path, Ratio::FACTOR_MAX)?),
        None => None,
    };
    let cap = match table.get("cap") {
        // `"none"` lifts the rule's cap for the people the adjustment selects.
        Some((node, path)) if matches!(&node.kind, Kind::Str(text) if text == "none") => {
            Some(Param::new(onestop_core::money::FEN_MAX, reader.source(node, &path)))
        }
        Some((node, path)) => Some(reader.money(node, &path)?),
        None => None,
    };
    table.get("notes");
    if ratio_points.is_none()
        && personal_share_factor.is_none()
        && threshold_factor.is_none()
        && cap.is_none()
    {
        return Err(reader.error(
            PolicyErrorCode::MissingKey,
            entry,
            entry_path,
            format!(
                "an adjustment changes something: ratio_points, personal_share_factor, \
                 {factor_key} or cap"
            ),
        ));
    }
    Ok(Adjustment { source, when, ratio_points, personal_share_factor, threshold_factor, cap })
}

const SELECTOR_KEYS: &[&str] = &[
    "scheme",
    "category",
    "visit",
    "level",
    "assistance",
    "needy",
    "civil_servant",
    "enterprise_supplementary",
    "elsewhere",
    "filing",
    "disease",
    "age_min",
    "age_max",
    "admission_min",
    "admission_max",
];

/// Reads a `when` selector. Absent keys match everything.
pub fn selector(reader: &Reader, node: &Node, path: &str) -> Result<Selector, PolicyError> {
    let mut table = Table::open(reader, node, path, SELECTOR_KEYS)?;
    let mut selector = Selector::any();
    if let Some((node, path)) = table.get("scheme") {
        let schemes = bits(reader, node, &path, Scheme::parse, &Scheme::codes(), Scheme::bit)?;
        let in_schemes = |c: &&Category| schemes & c.scheme().bit() != 0;
        selector.categories &=
            Category::ALL.iter().filter(in_schemes).fold(0, |acc, c| acc | c.bit());
    }
    if let Some((node, path)) = table.get("category") {
        let bits = bits(reader, node, &path, Category::parse, &Category::codes(), Category::bit)?;
        if bits & selector.categories == 0 {
            return Err(reader.invalid(
                node,
                &path,
                "none of these categories belongs to the scheme named".to_owned(),
            ));
        }
        selector.categories &= bits;
    }
    if let Some((node, path)) = table.get("visit") {
        selector.visits =
            bits(reader, node, &path, VisitType::parse, &VisitType::codes(), VisitType::bit)?;
    }
    if let Some((node, path)) = table.get("level") {
        selector.levels = bits(
            reader,
            node,
            &path,
            HospitalLevel::parse,
            &HospitalLevel::codes(),
            HospitalLevel::bit,
        )?;
    }
    if let Some((node, path)) = table.get("assistance") {
        let parse = |text: &str| match text {
            "none" => Some(None),
            other => AssistanceCategory::parse(other).map(Some),
        };
        let to_bit = |value: Option<AssistanceCategory>| {
            value.map_or(Selector::NO_ASSISTANCE, AssistanceCategory::bit)
        };
        let expected = format!("none, {}", AssistanceCategory::codes());
        selector.assistance = bits(reader, node, &path, parse, &expected, to_bit)?;
    }
    if let Some((node, path)) = table.get("filing") {
        let parse = |text: &str| match text {
            "none" => Some(None),
            other => FilingKind::parse(other).map(Some),
        };
        let to_bit = |value: Option<FilingKind>| value.map_or(Selector::NO_FILING, FilingKind::bit);
        let expected = format!("none, {}", FilingKind::codes());
        selector.filings = bits(reader, node, &path, parse, &expected, to_bit)?;
    }
    if let Some((node, path)) = table.get("disease") {
        selector.diseases = crate::diseases::disease_bits(reader, node, &path)?;
    }
    selector_flags(reader, &mut table, &mut selector)?;
    selector_bounds(reader, &mut table, &mut selector)?;
    Ok(selector)
}

/// Reads the yes-or-no conditions; an absent flag matches people either way.
fn selector_flags(
    reader: &Reader,
    table: &mut Table<'_>,
    selector: &mut Selector,
) -> Result<(), PolicyError> {
    let flag = |table: &mut Table<'_>, key: &str| -> Result<Option<bool>, PolicyError> {
        match table.get(key) {
            Some((node, path)) => reader.boolean(node, &path).map(Some),
            None => Ok(None),
        }
    };
    selector.needy = flag(table, "needy")?;
    selector.civil_servant = flag(table, "civil_servant")?;
    selector.enterprise_supplementary = flag(table, "enterprise_supplementary")?;
    selector.elsewhere = flag(table, "elsewhere")?;
    Ok(())
}

/// Reads the inclusive age and admission-count bounds; an absent bound leaves that end open.
fn selector_bounds(
    reader: &Reader,
    table: &mut Table<'_>,
    selector: &mut Selector,
) -> Result<(), PolicyError> {
    let bound = |table: &mut Table<'_>, key: &str, max: i64| -> Result<Option<i64>, PolicyError> {
        match table.get(key) {
            Some((node, path)) => reader.integer(node, &path, (0, max)).map(Some),
            None => Ok(None),
        }
    };
    let age_min = bound(table, "age_min", 150)?.unwrap_or(0);
    let age_max = bound(table, "age_max", 150)?.unwrap_or(255);
    let admission_min = bound(table, "admission_min", 100)?.unwrap_or(0);
    let admission_max = bound(table, "admission_max", 100)?.unwrap_or(i64::from(u16::MAX));
    if age_min > age_max || admission_min > admission_max {
        return Err(reader.invalid(
            table.node,
            &table.path,
            "a minimum exceeds its maximum".to_owned(),
        ));
    }
    selector.age = (u8::try_from(age_min).unwrap_or(0), u8::try_from(age_max).unwrap_or(u8::MAX));
    selector.admission = (
        u16::try_from(admission_min).unwrap_or(0),
        u16::try_from(admission_max).unwrap_or(u16::MAX),
    );
    Ok(())
}

fn bits<T: Copy>(
    reader: &Reader,
    node: &Node,
    path: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
    bit: impl Fn(T) -> u32,
) -> Result<u32, PolicyError> {
    let mut bits = 0;
    for (item, item_path) in reader.one_or_many(node, path) {
        bits |= bit(reader.name(item, &item_path, &parse, expected)?);
    }
    if bits == 0 {
        return Err(reader.invalid(node, path, "an empty list matches nothing".to_owned()));
    }
    Ok(bits)
}
