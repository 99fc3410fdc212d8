//! The OpenAPI document of `/v1`, served at `/v1/openapi.json`. Written out by hand so that it
//! says what the service promises; a test checks it names every route and every error code.

use onestop_api::ServiceCode;
use onestop_core::RejectionCode;
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
            "200": { "description": ok, "content": { "application/json": { "schema": { "type": "object" } } } },
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

/// The document.
pub fn document() -> Value {
    let rejection_codes: Vec<&str> = RejectionCode::ALL.iter().map(|c| c.code()).collect();
    let service_codes: Vec<&str> = ServiceCode::ALL.iter().map(|c| c.code()).collect();
    let visit = [("visit_id", "path")];
    let settlement = [("settlement_id", "path")];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "onestop settlement service 一站式结算服务",
            "version": "1",
            "description": "Settle a bill through every tier of medical security in one step. \
                Amounts are yuan strings with two decimals. Errors are {code, message, field}; \
                every code is documented in docs/reference/.",
        },
        "paths": {
            "/v1/health": { "get": { "summary": "liveness", "responses": { "200": { "description": "up" } } } },
            "/v1/openapi.json": { "get": { "summary": "this document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/v1/institutions": { "post": operation("register an institution of the agency's region (agency)", Some("RegisterInstitution"), "credential, shown once", &[]) },
            "/v1/persons": { "post": operation("register or update a person and enrolments (agency)", Some("RegisterPerson"), "the person", &[]) },
            "/v1/persons/{region}/{person_id}": { "get": operation("a person and year-to-date totals (audited)", None, "the person", &[("region", "path"), ("person_id", "path"), ("year", "query")]) },
            "/v1/assistance-lists": { "post": operation("import an assistance-recipient list, CSV or XLSX body (agency)", None, "import summary", &[("file_name", "query")]) },
            "/v1/visits": { "post": operation("register a visit or admission", Some("OpenVisit"), "the visit", &[]) },
            "/v1/visits/{visit_id}": { "get": operation("a visit and its lines", None, "the visit", &visit) },
            "/v1/visits/{visit_id}/lines": { "post": operation("upload fee lines", Some("AddLines"), "the visit with each line's catalog split", &visit) },
            "/v1/visits/{visit_id}/lines/{line_no}": { "delete": operation("withdraw a line of an open visit", None, "the visit", &[("visit_id", "path"), ("line_no", "path")]) },
            "/v1/visits/{visit_id}/pre-settle": { "post": operation("the full split and explanation, no side effects", Some("Settle"), "the settlement as it would be", &visit) },
            "/v1/visits/{visit_id}/settle": { "post": operation("settle (requires Idempotency-Key)", Some("Settle"), "the settlement record", &[("visit_id", "path"), ("Idempotency-Key", "header")]) },
            "/v1/settlements/{settlement_id}": { "get": operation("a settlement with its explanation", None, "the settlement record", &settlement) },
            "/v1/settlements/{settlement_id}/cancel": { "post": operation("cancel with a reversing entry; repeating it returns the same reversal", None, "the reversal record", &[("settlement_id", "path"), ("Idempotency-Key", "header")]) },
            "/v1/reconciliation": { "get": operation("an institution's day: counts and sums per tier", None, "the day's totals", &[("day", "query"), ("institution_id", "query")]) },
            "/v1/invariants": { "get": operation("check the ledger and accumulators (agency, auditor)", None, "violations, empty when sound", &[]) },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string", "enum": rejection_codes.iter().chain(&service_codes).collect::<Vec<_>>() },
                    "message": { "type": "string" },
                    "field": { "type": ["string", "null"] } } },
                "RegisterInstitution": { "type": "object", "required": ["institution_id", "name", "level"],
                    "properties": { "institution_id": { "type": "string" }, "name": { "type": "string" },
                        "level": { "type": "string", "enum": ["community", "1", "2", "3"] } } },
                "RegisterPerson": { "type": "object", "required": ["person_id", "name", "id_number", "birth_date", "gender", "enrolments"] },
                "OpenVisit": { "type": "object", "properties": {
                    "person_id": { "type": "string" }, "insured_region": { "type": "string" },
                    "visit": { "type": "string", "enum": ["general_outpatient", "chronic_outpatient", "inpatient", "ltc_institutional", "ltc_home"] },
                    "date_of_service": { "type": "string", "format": "date" },
                    "admission_number": { "type": "integer" } } },
                "AddLines": { "type": "object", "required": ["lines"], "properties": { "lines": { "type": "array", "items": {
                    "type": "object", "required": ["class", "amount"], "properties": {
                        "code": { "type": "string" }, "name": { "type": "string" },
                        "class": { "type": "string", "enum": ["a", "b", "outside"] },
                        "quantity": { "type": "string" }, "unit_price": { "type": "string" },
                        "amount": { "type": "string" }, "price_limit": { "type": "string" } } } } } },
                "Settle": { "type": "object", "properties": { "use_personal_account": { "type": "boolean" } } },
            }
        }
    })
}
