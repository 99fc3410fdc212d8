//! `onestop calc`: one bill, from files, through the engine.

use std::path::{Path, PathBuf};

use onestop_api::{BillDto, ClaimDto, Format, PersonDto, SettlementDto, YtdDto, read_document};
use onestop_core::{Claim, Rejection, RejectionCode};

#[derive(clap::Args)]
pub struct CalcArgs {
    /// Directory of policy files (*.toml), one or more per pooling region.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// The bill (JSON or TOML by extension). It may also be a whole claim with `bill`,
    /// `person` and `ytd` sections, in which case --person and --ytd are optional.
    #[arg(long)]
    pub bill: PathBuf,
    /// The insured person (JSON or TOML).
    #[arg(long)]
    pub person: Option<PathBuf>,
    /// Year-to-date accumulators (JSON or TOML); none means nothing counted yet this year.
    #[arg(long)]
    pub ytd: Option<PathBuf>,
    /// Print the result as JSON for machines instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn read_text(path: &Path) -> Result<String, Rejection> {
    std::fs::read_to_string(path).map_err(|error| {
        Rejection::new(
            RejectionCode::InputUnreadable,
            format!("cannot read {}: {error}", path.display()),
        )
    })
}

/// A file's format by its extension: `.json` or `.toml`, nothing else.
fn format_of(path: &Path) -> Result<Format, Rejection> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json" | "toml") => Ok(Format::of_path(path)),
        _ => Err(Rejection::new(
            RejectionCode::MalformedInput,
            format!("{}: a file is read as .json or .toml (by its extension)", path.display()),
        )),
    }
}

/// A document of `path`, its errors naming the file and the field within `section` (`person`,
/// `ytd`, `bill`), as a whole claim's would.
fn read<T: serde::de::DeserializeOwned>(path: &Path, section: &str) -> Result<T, Rejection> {
    read_document(&read_text(path)?, format_of(path)?).map_err(|rejection| Rejection {
        message: format!("{}: {}", path.display(), rejection.message),
        field: Some(match rejection.field {
            Some(field) => format!("{section}.{field}"),
            None => section.to_owned(),
        }),
        ..rejection
    })
}

/// Whether a document is a whole claim (has a top-level `bill`) rather than a bare bill.
fn is_claim_document(text: &str, format: Format) -> bool {
    match format {
        Format::Json => {
            serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.get("bill").is_some())
        }
        Format::Toml => text.parse::<toml::Table>().is_ok_and(|t| t.contains_key("bill")),
    }
}

fn load_claim(args: &CalcArgs) -> Result<(Claim, onestop_core::Accumulators), Rejection> {
    let format = format_of(&args.bill)?;
    let text = read_text(&args.bill)?;
    let mut document = if is_claim_document(&text, format) {
        read_document::<ClaimDto>(&text, format)?
    } else {
        ClaimDto { bill: read::<BillDto>(&args.bill, "bill")?, ..ClaimDto::default() }
    };
    match &args.person {
        Some(path) => document.person = read::<PersonDto>(path, "person")?,
        None if !is_claim_document(&text, format) => {
            return Err(Rejection::new(
                RejectionCode::MissingField,
                "no person: give --person FILE, or a claim file with a [person] section",
            )
            .field("person"));
        }
        None => {}
    }
    if let Some(path) = &args.ytd {
        document.ytd = Some(read::<YtdDto>(path, "ytd")?);
    }
    document.parse()
}

/// Every year-to-date counter typed into a file names a tier of the insured region's policy and
/// a pool one of its rules counts in: a misspelt one would be silently ignored, and the person
/// charged a deductible already met.
fn known_counters(
    timeline: &[std::sync::Arc<onestop_core::policy::Policy>],
    ytd: &onestop_core::Accumulators,
) -> Result<(), Rejection> {
    // Any of the region's policies: a tier renamed mid-year leaves counters of its old name.
    let tiers: Vec<&onestop_core::policy::Tier> = timeline.iter().flat_map(|p| &p.tiers).collect();
    for (key, _) in ytd.entries() {
        let tier = tiers.iter().find(|t| t.id == key.tier);
        let Some(tier) = tier else {
            let mut known: Vec<&str> = tiers.iter().map(|t| &*t.id).collect();
            known.sort_unstable();
            known.dedup();
            return Err(Rejection::new(
                RejectionCode::AccumulatorInvalid,
                format!(
                    "`{}` is not a tier of the insured region's policy: {}",
                    key.tier,
                    known.join(", ")
                ),
            )
            .field(format!("ytd.tiers.{}", key.tier)));
        };
        let same_id = tiers.iter().filter(|t| t.id == tier.id);
        let mut pools: Vec<&str> = same_id.flat_map(|t| &t.rules).flat_map(|r| r.pools()).collect();
        pools.sort_unstable();
        pools.dedup();
        if !pools.contains(&&*key.pool) {
            return Err(Rejection::new(
                RejectionCode::AccumulatorInvalid,
                format!(
                    "`{}` is not a pool of tier `{}`: {}",
                    key.pool,
                    key.tier,
                    pools.join(", ")
                ),
            )
            .field(format!("ytd.tiers.{}.{}", key.tier, key.pool)));
        }
    }
    Ok(())
}

pub fn run(args: &CalcArgs) -> Result<(), String> {
    let (book, _) = onestop_policy::load_dir(&args.policies).map_err(|error| error.to_string())?;
    let (claim, ytd) = load_claim(args).map_err(|rejection| rejection.to_string())?;
    let (settlement, insured, treatment) = book.split(&claim, &ytd).map_err(|r| r.to_string())?;
    let region = claim.person.insured_region;
    known_counters(book.timeline(region), &ytd).map_err(|rejection| rejection.to_string())?;
    let dto = SettlementDto::from_core(&claim, insured, treatment, &ytd, &settlement);
    if args.json {
        let text = serde_json::to_string_pretty(&dto).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", crate::table::render(&dto));
    }
    Ok(())
}
