//! The OpenAPI document of `/v1`, served at `/v1/openapi.json`. Written out by hand so that it
//! says what the service promises; a test checks it names every route and every error code.

use onestop_api::ServiceCode;
use onestop_core::{Category, FilingKind, RejectionCode};
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn operation(summary: &str, body: Option<&str>, ok: &str, params: &[(&str, &str)]) -> Value {
    let mut op = json!({
        "summary": summary,
        "security": [{ "bearer": [] }],
        "parameters": params.iter().map(|(name, place)| json!({
            "name": name, "in": place, "required": *place == "path", "schema": { "type": "string" }
        })).collect::<Vec<_>>(),
        "responses": {
            "200": { "description": ok,
                "content": { "application/json": { "schema": { "type": "object" } } } },
            "4XX": error_response("a claim rejection or service error: see the codes below"),
            "5XX": error_response("server_busy or internal_error"),
        }
    });
    if let Some(body) = body {
        op["requestBody"] = json!({ "required": false, "content": { "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
    }
    op
}

/// One operation of the API: (method, path, summary, request schema, what 200 returns,
/// parameters as (name, where)).
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const VISIT: &[(&str, &str)] = &[("visit_id", "path")];
const SETTLEMENT: &[(&str, &str)] = &[("settlement_id", "path")];
const FILING: &[(&str, &str)] = &[("filing_id", "path")];

const OPERATIONS: &[Operation] = &[
    (
        "put",
        "/v1/institutions/{institution_id}/nhsa-keys",
        "set an institution's SM4/SM2 keys for the national interface (agency)",
        None,
        "the mode",
        &[("institution_id", "path")],
    ),
    (
        "post",
        "/fsi/api/rsfComIfsService/callService",
        "the national interface: one envelope in, one out (docs/national-interface.md)",
        None,
        "the response envelope (infcode 0 or -1)",
        &[],
    ),
    (
        "post",
        "/fsi/api/rsfComIfsService/callService/{infno}",
        "the national interface, transaction code in the path",
        None,
        "the response envelope (infcode 0 or -1)",
        &[("infno", "path")],
    ),
    (
        "post",
        "/v1/institutions",
        "register an institution of the agency's region (agency)",
        Some("RegisterInstitution"),
        "credential, shown once",
        &[],
    ),
    (
        "post",
        "/v1/persons",
        "register or update a person and enrolments (agency)",
        Some("RegisterPerson"),
        "the person",
        &[],
    ),
    (
        "get",
        "/v1/persons/{region}/{person_id}",
        "a person and year-to-date totals (audited)",
        None,
        "the person",
        &[("region", "path"), ("person_id", "path"), ("year", "query")],
    ),
    (
        "post",
        "/v1/assistance-lists",
        "import an assistance list: CSV (UTF-8, GB18030, UTF-16), XLSX, XLS or ODS (agency)",
        None,
        "import summary",
        &[("file_name", "query")],
    ),
    (
        "post",
        "/v1/persons/{region}/{person_id}/account-credits",
        "credit a person's personal account for a month, 个人账户划入 (agency; requires \
        Idempotency-Key)",
        Some("AccountCredit"),
        "the credit, with the balance after it (201)",
        &[("region", "path"), ("person_id", "path"), ("Idempotency-Key", "header")],
    ),
    (
        "post",
        "/v1/filings",
        "file a person for care in another region, 异地就医备案 (agency)",
        Some("Filing"),
        "the filing, approved or pending",
        &[],
    ),
    (
        "post",
        "/v1/filings/{filing_id}/approve",
        "approve a pending filing (agency)",
        None,
        "the filing",
        FILING,
    ),
    (
        "post",
        "/v1/filings/{filing_id}/withdraw",
        "withdraw a filing (agency)",
        None,
        "the filing",
        FILING,
    ),
    (
        "get",
        "/v1/persons/{region}/{person_id}/filings",
        "a person's filings; an institution sees those for its region (audited)",
        None,
        "the filings",
        &[("region", "path"), ("person_id", "path")],
    ),
    ("post", "/v1/visits", "register a visit or admission", Some("OpenVisit"), "the visit", &[]),
    ("get", "/v1/visits/{visit_id}", "a visit and its lines (audited)", None, "the visit", VISIT),
    (
        "patch",
        "/v1/visits/{visit_id}",
        "change an open visit's type (within its kind) or disease (as 2203 does)",
        Some("UpdateVisit"),
        "the visit",
        VISIT,
    ),
    (
        "post",
        "/v1/visits/{visit_id}/lines",
        "upload fee lines",
        Some("AddLines"),
        "the visit with each line's catalog split",
        VISIT,
    ),
    (
        "delete",
        "/v1/visits/{visit_id}/lines/{line_no}",
        "withdraw a line of an open visit",
        None,
        "the visit",
        &[("visit_id", "path"), ("line_no", "path")],
    ),
    (
        "post",
        "/v1/visits/{visit_id}/pre-settle",
        "the full split and explanation, no side effects",
        Some("Settle"),
        "the settlement as it would be",
        VISIT,
    ),
    (
        "post",
        "/v1/visits/{visit_id}/settle",
        "settle (requires Idempotency-Key)",
        Some("Settle"),
        "the settlement record",
        &[("visit_id", "path"), ("Idempotency-Key", "header")],
    ),
    (
        "get",
        "/v1/settlements/{settlement_id}",
        "a settlement with its explanation (audited)",
        None,
        "the settlement record",
        SETTLEMENT,
    ),
    (
        "post",
        "/v1/settlements/{settlement_id}/cancel",
        "cancel with a reversing entry; repeating it returns the same reversal",
        None,
        "the reversal record",
        &[("settlement_id", "path"), ("Idempotency-Key", "header")],
    ),
    (
        "get",
        "/v1/reconciliation",
        "an institution's day: counts and sums per tier",
        None,
        "the day's totals",
        &[("day", "query"), ("institution_id", "query")],
    ),
    (
        "post",
        "/v1/reconciliation",
        "check a hospital's day against the ledger: totals, and its list on mismatch (对账)",
        Some("Reconcile"),
        "matched, or the totals and settlements that differ",
        &[],
    ),
    (
        "get",
        "/v1/clearing",
        "the region's monthly clearing statement, JSON or CSV (清算, agency, auditor)",
        None,
        "the statement",
        &[("month", "query"), ("format", "query")],
    ),
    (
        "put",
        "/v1/prepayments/{month}",
        "record the region's opening prepayment balance for a month (预付金, agency)",
        Some("Prepayment"),
        "the balance recorded",
        &[("month", "path")],
    ),
    (
        "get",
        "/v1/statistics",
        "a region's settlements, cost, fund paid, payout ratio, advances spared (agency)",
        None,
        "statistics by inpatient, outpatient, long-term care and all",
        &[("from", "query"), ("to", "query")],
    ),
    (
        "post",
        "/v1/maintenance-windows",
        "announce a window in which settlement for the region's people stops (系统维护, agency)",
        Some("MaintenanceWindow"),
        "the window",
        &[],
    ),
    (
        "delete",
        "/v1/maintenance-windows/{window_id}",
        "cancel a window (agency)",
        None,
        "the window cancelled",
        &[("window_id", "path")],
    ),
    (
        "get",
        "/v1/invariants",
        "check the ledger and accumulators (agency, auditor)",
        None,
        "violations, empty when sound",
        &[],
    ),
    (
        "get",
        "/v1/audit-log",
        "who read or changed the region's people's data, in time order (审计日志, agency, \
        auditor; audited)",
        None,
        "a page of entries, and the cursor of the next page",
        &[
            ("region", "query"),
            ("person_id", "query"),
            ("actor", "query"),
            ("action", "query"),
            ("channel", "query"),
            ("msgid", "query"),
            ("from", "query"),
            ("to", "query"),
            ("after", "query"),
            ("limit", "query"),
        ],
    ),
];

fn paths() -> Value {
    let mut paths = json!({
        "/v1/health": { "get": { "summary": "liveness",
            "responses": { "200": { "description": "up" } } } },
        "/v1/status": { "get": { "summary": "every region known here: up, in maintenance or \
                unreachable, and its windows (public)",
            "responses": { "200": { "description": "the regions' states" } } } },
        "/v1/openapi.json": { "get": { "summary": "this document",
            "responses": { "200": { "description": "OpenAPI 3.1" } } } },
    });
    for (method, path, summary, body, ok, params) in OPERATIONS {
        paths[*path][*method] = operation(summary, *body, ok, params);
    }
    paths
}

fn schemas() -> Value {
    let rejection_codes = RejectionCode::ALL.iter().map(|c| c.code());
    let codes: Vec<&str> =
        rejection_codes.chain(ServiceCode::ALL.iter().map(|c| c.code())).collect();
    let mut schemas = json!({
        "Error": { "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "string", "enum": codes },
            "message": { "type": "string" },
            "field": { "type": ["string", "null"] } } },
        "RegisterInstitution": { "type": "object", "required": ["institution_id", "name", "level"],
            "properties": { "institution_id": { "type": "string" }, "name": { "type": "string" },
                "level": { "type": "string", "enum": ["community", "1", "2", "3"] } } },
        "RegisterPerson": { "type": "object", "required": ["person_id", "name", "id_number",
            "birth_date", "gender", "enrolments"], "properties": {
                "person_id": { "type": "string" }, "name": { "type": "string" },
                "id_number": { "type": "string", "pattern": "^([0-9]{15}|[0-9]{17}[0-9X])$" },
                "birth_date": { "type": "string", "format": "date" },
                "gender": { "type": "string", "enum": ["0", "1", "2", "9"] },
                "account_balance": { "type": "string" },
                "enrolments": { "type": "array", "items": { "type": "object",
                    "required": ["year", "category"], "properties": {
                        "year": { "type": "integer", "minimum": 1900, "maximum": 2100 },
                        "category": { "type": "string",
                            "enum": Category::ALL.iter().map(|c| c.code()).collect::<Vec<_>>() },
                        "civil_servant": { "type": "boolean" },
                        "enterprise_supplementary": { "type": "boolean" },
                        "needy": { "type": "boolean" } } } } } },
        "Filing": { "type": "object", "required": ["person_id", "kind", "destination", "start"],
            "properties": { "person_id": { "type": "string" },
                "kind": { "type": "string", "enum": FilingKind::ALL.iter().map(|k| k.code())
                    .collect::<Vec<_>>() },
                "destination": { "type": "string" },
                "start": { "type": "string", "format": "date" },
                "end": { "type": "string", "format": "date" },
                "commitment": { "type": "boolean" },
                "filed_on": { "type": "string", "format": "date" } } },
        "AccountCredit": { "type": "object", "required": ["amount", "period"],
            "properties": { "amount": { "type": "string",
                    "description": "划入金额: yuan, above 0, at most 100000.00" },
                "period": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$",
                    "description": "划入期间: the month the credit is for" },
                "note": { "type": "string", "maxLength": 100 } } },
        "Reconcile": { "type": "object", "required": ["day", "settlements", "reversals",
            "medical_cost", "fund_total", "personal_account", "cash"], "properties": {
                "day": { "type": "string", "format": "date" },
                "settlements": { "type": "integer" }, "reversals": { "type": "integer" },
                "medical_cost": { "type": "string" }, "fund_total": { "type": "string" },
                "personal_account": { "type": "string" }, "cash": { "type": "string" },
                "tiers": { "type": "object", "additionalProperties": { "type": "string" } },
                "list": { "type": "array", "items": { "type": "object", "required":
                    ["settlement_id", "total", "fund_total", "personal_account", "cash"] } } } },
        "Prepayment": { "type": "object", "required": ["balance"],
            "properties": { "balance": { "type": "string" } } },
        "MaintenanceWindow": { "type": "object", "required": ["starts_at", "ends_at", "reason"],
            "properties": { "starts_at": { "type": "string", "format": "date-time" },
                "ends_at": { "type": "string", "format": "date-time" },
                "reason": { "type": "string" } } },
        "Settle": { "type": "object",
            "properties": { "use_personal_account": { "type": "boolean" },
                "days": { "type": "integer", "minimum": 1, "maximum": 3660,
                    "description": "住院天数/护理天数: the days the bill covers, for rules \
                        that pay at most so much a day; an admission discharged by 2402 \
                        counts its own" } } },
    });
    if let (Some(all), Value::Object(visits)) = (schemas.as_object_mut(), visit_schemas()) {
        all.extend(visits);
    }
    schemas
}

/// The bodies of requests about visits.
fn visit_schemas() -> Value {
    let visits =
        ["general_outpatient", "chronic_outpatient", "inpatient", "ltc_institutional", "ltc_home"];
    let line = json!({ "type": "object", "required": ["class", "amount"], "properties": {
        "code": { "type": "string" }, "name": { "type": "string" },
        "class": { "type": "string", "enum": ["a", "b", "outside"] },
        "quantity": { "type": "string" }, "unit_price": { "type": "string" },
        "amount": { "type": "string" }, "price_limit": { "type": "string" } } });
    json!({
        "OpenVisit": { "type": "object", "properties": {
            "person_id": { "type": "string" }, "insured_region": { "type": "string" },
            "visit": { "type": "string", "enum": visits },
            "date_of_service": { "type": "string", "format": "date" },
            "admission_number": { "type": "integer" }, "disease": { "type": "string",
                "pattern": "^[A-Za-z0-9._-]{1,30}$", "description": "病种编码" } } },
        "UpdateVisit": { "type": "object", "properties": {
            "visit": { "type": "string", "enum": visits },
            "disease": { "type": ["string", "null"], "pattern": "^[A-Za-z0-9._-]{1,30}$",
                "description": "病种编码; null names none" } } },
        "AddLines": { "type": "object", "required": ["lines"],
            "properties": { "lines": { "type": "array", "items": line } } },
    })
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "onestop settlement service 一站式结算服务",
            "version": "1",
            "description": "Settle a bill through every tier of medical security in one step. \
                Amounts are yuan strings with two decimals. Errors are {code, message, field}; \
                every code is documented in docs/reference/.",
        },
        "paths": paths(),
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        }
    })
}
