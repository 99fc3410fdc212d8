//! What the server's tests share: the fixed clock, the bundled policies, and a store opened
//! with its region's agency registered.

use std::path::Path;
use std::sync::Arc;

use onestop_core::{Date, PolicyBook, Region};
use onestop_server::Clock;
use onestop_store::{Env, Institution, Role, Store, people};

/// 2024-06-10 10:00 in China.
pub fn clock() -> Clock {
    Arc::new(|| "2024-06-10T10:00:00+08:00[Asia/Shanghai]".parse().expect("time"))
}

/// A SQLite store at `path` with the bundled policies, and the agency `agency_id` (named
/// `name`) of `region` registered in it; its token.
pub async fn store_with_agency(
    path: &Path,
    (agency_id, name, region): (&str, &str, u32),
) -> (Arc<Store>, Arc<PolicyBook>, String) {
    let store = Arc::new(Store::open(&format!("sqlite:{}", path.display())).expect("store"));
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let book = Arc::new(onestop_policy::load_dir(&policies).expect("policies").0);
    let agency = Institution {
        institution_id: agency_id.into(),
        region: Region(region),
        name: name.into(),
        level: None,
        role: Role::Agency,
    };
    let env_book = Arc::clone(&book);
    let credential = store
        .write(move |tx| {
            let env = Env {
                book: &env_book,
                now: "2024-06-10T09:00:00+08:00".into(),
                today: Date::constant(2024, 6, 10),
                channel: onestop_store::audit::Channel::Local,
            };
            people::register(tx, &env, &agency)
        })
        .await
        .expect("the agency is registered")
        .expect("a new id");
    (store, book, credential.token)
}
