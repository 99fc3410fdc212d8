//! Fresh stores for contract tests: a temporary SQLite file, and a new PostgreSQL database when
//! `ONESTOP_TEST_POSTGRES` names a server.

// Not every test crate that includes this module uses each function.
#![allow(dead_code)]

use onestop_store::Store;

/// The server the PostgreSQL contract runs on (`postgres://user@host:port/database`), as
/// `cargo xtask test` exports it.
const POSTGRES_SERVER: &str = "ONESTOP_TEST_POSTGRES";

pub async fn stores() -> Vec<Store> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.keep().join("contract.sqlite");
    let mut stores =
        vec![Store::open(&format!("sqlite:{}", path.display())).expect("sqlite store")];
    if let Some(server) = postgres_server() {
        // The synchronous client must not run on an async worker thread.
        let url = tokio::task::spawn_blocking(move || fresh_database(&server))
            .await
            .expect("create a database");
        let store = Store::open(&url).unwrap_or_else(|e| panic!("postgres store at {url}: {e}"));
        stores.push(store);
    }
    stores
}

/// The PostgreSQL server of the suite, if there is one.
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_SERVER).ok().filter(|url| !url.is_empty())
}

/// Creates a database of a random name on `server` and returns its URL.
pub fn fresh_database(server: &str) -> String {
    let name = format!("onestop_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut client = postgres::Client::connect(server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{POSTGRES_SERVER}={server}: {e}"));
    client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
    with_database(server, &name)
}

/// `url` with its database replaced by `name` (any query string is kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(base, query)| (base, query));
    let host_at = base.find("://").map_or(0, |at| at + 3);
    let path_at = base[host_at..].find('/').map_or(base.len(), |at| host_at + at);
    let query = if query.is_empty() { String::new() } else { format!("?{query}") };
    format!("{}/{name}{query}", &base[..path_at])
}
