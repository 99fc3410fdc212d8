//! Errors on the wire: `{code, message, field}` with a stable code and its HTTP status.
//!
//! Two families share the shape: claim rejections (`onestop_core::RejectionCode`, found by the
//! engine or while parsing a bill) and service errors (`ServiceCode`: authentication, state of
//! a visit, idempotency, limits). Every code has a page in `docs/reference/`.

use onestop_core::{Rejection, RejectionCode};
use serde::{Deserialize, Serialize};

macro_rules! service_codes {
    ($($variant:ident = $code:literal, $status:literal, $zh:literal, $doc:literal;)+) => {
        /// Why the service refused a request (other than a claim rejection).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum ServiceCode { $(#[doc = $doc] $variant),+ }

        impl ServiceCode {
            pub const ALL: &'static [ServiceCode] = &[$(ServiceCode::$variant),+];

            pub fn code(self) -> &'static str {
                match self { $(ServiceCode::$variant => $code),+ }
            }

            /// The HTTP status the code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ServiceCode::$variant => $status),+ }
            }

            pub fn zh(self) -> &'static str {
                match self { $(ServiceCode::$variant => $zh),+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(ServiceCode::$variant => $doc),+ }
            }
        }
    };
}

service_codes! {
    Unauthorized = "unauthorized", 401, "未认证",
        "Every request except the OpenAPI document and health check carries \
         `Authorization: Bearer <token>` of a registered institution, agency or auditor.";
    Forbidden = "forbidden", 403, "无权限",
        "An institution acts on and reads only its own visits and settlements; an agency only \
         its own region; an auditor only reads.";
    RouteNotFound = "route_not_found", 404, "接口不存在",
        "The path must be one the API defines (see /v1/openapi.json).";
    MethodNotAllowed = "method_not_allowed", 405, "请求方法不支持",
        "Each path takes the methods the API defines (see /v1/openapi.json).";
    PersonNotFound = "person_not_found", 404, "人员不存在",
        "The person must be registered in the region named.";
    VisitNotFound = "visit_not_found", 404, "就诊不存在",
        "The visit id must be one this service issued.";
    SettlementNotFound = "settlement_not_found", 404, "结算不存在",
        "The settlement id must be one this service issued.";
    InstitutionNotFound = "institution_not_found", 404, "机构不存在",
        "The institution must be registered.";
    PersonNotEnrolled = "person_not_enrolled", 422, "人员未参保",
        "The person must be enrolled (scheme and category) for the year of the date of service.";
    VisitTypeChangeInvalid = "visit_type_change_invalid", 409, "医疗类别不可变更",
        "An admission stays an admission and an outpatient visit an outpatient one: only the \
         kind within each changes (普通门诊 to 门诊慢特病, 住院 to 日间手术 ...). Withdraw the \
         visit and open one of the other kind.";
    VisitNotOpen = "visit_not_open", 409, "就诊已结算",
        "Fee lines are added, removed and settled only while the visit is open; cancel its \
         settlement first.";
    VisitHasNoLines = "visit_has_no_lines", 409, "无费用明细",
        "A visit is settled only after fee lines were uploaded to it.";
    SettlementIsAReversal = "settlement_is_a_reversal", 409, "冲销记录不可撤销",
        "Only a settlement can be cancelled, not the reversal that cancelled one.";
    IdempotencyKeyRequired = "idempotency_key_required", 400, "缺少幂等键",
        "A settle request carries an `Idempotency-Key` header, so that a retry never settles \
         twice.";
    IdempotencyKeyInvalid = "idempotency_key_invalid", 400, "幂等键格式错误",
        "An idempotency key is 1 to 64 printable ASCII characters.";
    IdempotencyKeyReused = "idempotency_key_reused_with_another_request", 422, "幂等键已用于其他请求",
        "An idempotency key names one request: reusing it with another path or body about the \
         same person is refused (keys are kept with the person's settlements, so a key must \
         never be reused for another patient).";
    IdInvalid = "id_invalid", 400, "标识格式错误",
        "Person, visit, settlement and institution ids have the documented form.";
    BodyTooLarge = "body_too_large", 413, "请求体过大",
        "A request body is at most 8 MiB.";
    ServerBusy = "server_busy", 503, "服务繁忙",
        "The service is at its limit of connections or requests in flight; retry (with the same \
         idempotency key).";
    BodyMalformed = "body_malformed", 400, "请求体格式错误",
        "A request body is UTF-8 JSON (or, for assistance lists, CSV or a spreadsheet).";
    AssistanceListInvalid = "assistance_list_invalid", 422, "救助名单格式错误",
        "Every row of an assistance-recipient list parses and names a registered person; \
         otherwise nothing of the file is imported.";
    PeriodInvalid = "period_invalid", 400, "期间格式错误",
        "A month is written YYYY-MM; a period is `from` and `to` dates (YYYY-MM-DD), `from` not \
         after `to`, at most 366 days.";
    FilingNotFound = "filing_not_found", 404, "备案不存在",
        "The filing id must be one this service issued, of a person of the agency's region.";
    FilingInvalid = "filing_invalid", 422, "备案信息错误",
        "A filing names a known kind, a region of treatment other than the insured region, \
         and a start date not after its end date.";
    FilingNotPending = "filing_not_pending", 409, "备案状态不允许此操作",
        "Only a pending filing is approved; a withdrawn filing stays withdrawn.";
    RegionNotServed = "region_not_served", 404, "统筹区未接入",
        "The person's insured region must be served by this node or one of its peers.";
    InsuredRegionUnavailable = "insured_region_unavailable", 503, "参保地系统无法连接",
        "The insured region's node could not be reached: nothing was sent, nothing was settled. \
         Retry later, or settle by the paper route (手工报销).";
    InsuredRegionTimeout = "insured_region_timeout", 504, "参保地系统响应超时",
        "The insured region's node did not answer in time: the outcome is unknown. Retry with \
         the same Idempotency-Key to learn it (a settlement is never made twice), then cancel \
         it if it is not wanted.";
    RegionInMaintenance = "region_in_maintenance", 503, "参保地系统维护中",
        "The insured region announced a maintenance window: settlement for its people resumes \
         at the window's end (see GET /v1/status).";
    MaintenanceWindowInvalid = "maintenance_window_invalid", 422, "维护时段错误",
        "A window has RFC 3339 start and end times with an offset, ends after it starts and \
         after now, lasts at most 7 days, does not overlap another window of the region, and \
         has a reason of at most 200 characters.";
    MaintenanceWindowNotFound = "maintenance_window_not_found", 404, "维护时段不存在",
        "The window must be one the agency's region announced and not already cancelled.";
    InstitutionIdTaken = "institution_id_taken", 409, "机构编码已被占用",
        "An institution id names one institution, agency or auditor of one region: registering \
         it again from another region, or with another role, is refused. An agency registering \
         one of its own institutions again replaces its name, level and token (the old token \
         stops working at once, and within a minute on other processes).";
    AccountCreditInvalid = "account_credit_invalid", 422, "个人账户划入信息错误",
        "A credit to a personal account (个人账户划入) is an amount of yuan above 0 and at most \
         100,000.00, for a month written YYYY-MM (1900-01 to 2100-12), with a note of at most \
         100 characters; `field` names what does not hold.";
    PersonInvalid = "person_invalid", 400, "人员信息错误",
        "A person registered has an identity number of 15 or 18 characters (digits, a final X) \
         that no other person of the region has, a birth date not after today, a gender code \
         of GB/T 2261.1 (0 unknown, 1 male, 2 female, 9 unstated) and enrolment years 1900 to \
         2100; `field` names what does not hold.";
    QueryInvalid = "query_invalid", 400, "查询参数错误",
        "Each query parameter has the form its path defines (a year is a number, 1900 to \
         2100); `field` names the one that does not.";
    InternalError = "internal_error", 500, "内部错误",
        "An invariant failed; nothing was written. This is a bug: report it with the request.";
}

/// The JSON body of every error response.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

/// An error answered to a request: status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    pub status: u16,
    pub body: ErrorBody,
}

/// A message for Chinese readers too: one written in English alone is led by the code's Chinese
/// term (`无权限 institution ... may not do this`); one that already has Chinese is kept.
fn bilingual(zh: &str, message: String) -> String {
    let chinese = message.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    if chinese { message } else { format!("{zh} {message}") }
}

impl ServiceError {
    pub fn new(code: ServiceCode, message: impl Into<String>) -> ServiceError {
        let message = bilingual(code.zh(), message.into());
        ServiceError {
            status: code.status(),
            body: ErrorBody { code: code.code().to_owned(), message, field: None },
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> ServiceError {
        self.body.field = Some(field.into());
        self
    }

    pub fn code(&self) -> &str {
        &self.body.code
    }
}

/// Claim rejections about the input itself are 400; those about policies in force are 422.
pub fn rejection_status(code: RejectionCode) -> u16 {
    match code {
        RejectionCode::AccumulatorsYearMustMatchDateOfService
        | RejectionCode::InsuredRegionHasNoPolicy
        | RejectionCode::NoPolicyInForceOnDateOfService
        | RejectionCode::CrossRegionFilingRequired
        | RejectionCode::TreatmentRegionHasNoCatalogInForce
        | RejectionCode::DaysRequired => 422,
        _ => 400,
    }
}

impl From<Rejection> for ServiceError {
    fn from(rejection: Rejection) -> ServiceError {
        ServiceError {
            status: rejection_status(rejection.code),
            body: ErrorBody {
                code: rejection.code.code().to_owned(),
                message: bilingual(rejection.code.zh(), rejection.message),
                field: rejection.field,
            },
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.body.code, self.body.message)
    }
}
