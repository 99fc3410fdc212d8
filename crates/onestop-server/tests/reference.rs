//! `docs/reference/service-errors.md` is generated from the service codes; this test keeps it
//! true (`UPDATE_EXPECT=1 cargo test -p onestop-server --test reference` rewrites it).

use onestop_api::ServiceCode;

const HEAD: &str = "# Service errors (服务错误)

Every error of the HTTP API is JSON `{\"code\", \"message\", \"field\"}` with the status below.
Claim rejections (bad bills, persons, accumulators; no policy in force) use the codes of
[rejections.md](rejections.md): 400 for input, 422 for policy lookups. Codes never change
meaning; messages may be reworded. A settle or cancel answered with any of these is stored
under its idempotency key and replayed on a retry (except 401, 5xx and malformed requests,
which never reach the store).
";

#[test]
fn the_service_error_reference_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/reference/service-errors.md");
    let mut text = String::from(HEAD);
    text.push_str("\n| code | status | 中文 | what must hold |\n|---|---|---|---|\n");
    for code in ServiceCode::ALL {
        let description = code.description().replace('|', "\\|");
        text.push_str(&format!(
            "| `{}` | {} | {} | {description} |\n",
            code.code(),
            code.status(),
            code.zh()
        ));
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &text).expect("write");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == text,
        "docs/reference/service-errors.md is stale: run \
        UPDATE_EXPECT=1 cargo test -p onestop-server --test reference"
    );
}
