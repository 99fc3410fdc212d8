//! `onestop clearing`: the month's clearing statements of every region, written as CSV and
//! JSON files (the clearing house's monthly run, 月度清算).

use std::path::PathBuf;

use onestop_clearing::{Month, statement_csv};

#[derive(clap::Args)]
pub struct ClearingArgs {
    /// `sqlite:PATH` or `postgres://...`, as given to `serve`.
    #[arg(long, default_value = "sqlite:onestop.sqlite")]
    pub database: String,
    /// The month to clear, `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// Directory to write `clearing-<region>-<month>.csv` and `.json` into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// On a node of a federation, its file (as given to `serve`): only the node's own regions'
    /// statements are written, since only this node holds every settlement of their people.
    #[arg(long)]
    pub federation: Option<PathBuf>,
}

pub fn run(args: &ClearingArgs) -> Result<(), String> {
    let month = Month::parse(&args.month).ok_or_else(|| {
        format!("period_invalid: `{}` is not a month written YYYY-MM", args.month)
    })?;
    let store = crate::serve::open_store(&args.database)?;
    let runtime = crate::serve::runtime()?;
    let own = match &args.federation {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the federation file {}: {e}", path.display()))?;
            let regions = onestop_server::federation::node_regions(&text)
                .map_err(|e| format!("federation file {}: {e}", path.display()))?;
            Some(regions)
        }
        None => None,
    };
    let mut statements = runtime
        .block_on(store.read(move |tx| onestop_store::clearing::statements(tx, month)))
        .map_err(|e| format!("cannot read the ledger: {e}"))?;
    if let Some(own) = &own {
        // Another node's region appears here only through its people's care at this node's
        // institutions: its statement is written by its own node.
        statements.retain(|s| own.contains(&s.region));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    println!("清算 clearing {month}: {} regions", statements.len());
    for statement in &statements {
        let stem = args.out.join(format!("clearing-{}-{month}", statement.region));
        let json = serde_json::to_string_pretty(statement).map_err(|e| e.to_string())?;
        for (extension, text) in [("csv", statement_csv(statement)), ("json", json)] {
            let path = stem.with_extension(extension);
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        println!(
            "  {}  应付 payable {:>14}  应收 receivable {:>14}  轧差 net {:>14}  预付金余额 closing {:>14}",
            statement.region,
            statement.payable_total,
            statement.receivable_total,
            statement.net_total,
            statement.closing_balance
        );
    }
    Ok(())
}
