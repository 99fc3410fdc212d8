//! The envelope of every call (§1 of the reference), read leniently: clients send numbers as
//! numbers or strings and absent values as empty strings, and `input` is an object in plain mode
//! and a Base64 string in encrypted mode.

use serde_json::{Map, Value};

/// A field's text: strings as they are (trimmed), numbers as written, empty or null as absent.
pub fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

/// The first of several spellings that is present (the reference lists variants).
pub fn text_any(object: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| text(object, key))
}

/// The longest `msgid` taken: the interface's is 30 characters; some clients pad theirs.
pub const MSGID_BYTES_MAX: usize = 64;

/// A request envelope.
#[derive(Clone, Debug)]
pub struct Request {
    pub infno: String,
    pub msgid: String,
    pub mdtrtarea_admvs: Option<String>,
    pub insuplc_admdvs: Option<String>,
    pub fixmedins_code: String,
    pub fixmedins_name: Option<String>,
    pub sign_no: Option<String>,
    pub opter: Option<String>,
    pub opter_name: Option<String>,
    pub inf_time: Option<String>,
    pub cainfo: Option<String>,
    pub signtype: Option<String>,
    pub enc_type: Option<String>,
    /// The input: an object (plain), or the Base64 text of the encrypted input.
    pub input: Value,
}

/// Why an envelope cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeError(pub String);

impl Request {
    /// Reads an envelope; `infno_from_path` (the `/callService/{infno}` form) wins if given.
    pub fn parse(body: &[u8], infno_from_path: Option<&str>) -> Result<Request, EnvelopeError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            EnvelopeError(format!("报文不是合法的JSON the envelope is not JSON: {e}"))
        })?;
        let Value::Object(object) = value else {
            return Err(EnvelopeError(
                "报文必须是JSON对象 the envelope must be a JSON object".into(),
            ));
        };
        let required = |key: &str| {
            text(&object, key)
                .ok_or_else(|| EnvelopeError(format!("缺少必填字段 missing field `{key}`")))
        };
        let infno = match infno_from_path.filter(|p| !p.is_empty()) {
            Some(infno) => infno.to_owned(),
            None => required("infno")?,
        };
        let msgid = required("msgid")?;
        if msgid.len() > MSGID_BYTES_MAX {
            return Err(EnvelopeError(format!(
                "报文ID过长 msgid has at most {MSGID_BYTES_MAX} characters (30 in the interface)"
            )));
        }
        Ok(Request {
            msgid,
            fixmedins_code: required("fixmedins_code")?,
            mdtrtarea_admvs: text_any(&object, &["mdtrtarea_admvs", "mdtrt_area_admvs"]),
            insuplc_admdvs: text(&object, "insuplc_admdvs"),
            fixmedins_name: text(&object, "fixmedins_name"),
            sign_no: text(&object, "sign_no"),
            opter: text(&object, "opter"),
            opter_name: text(&object, "opter_name"),
            inf_time: text(&object, "inf_time"),
            cainfo: text(&object, "cainfo"),
            signtype: text(&object, "signtype"),
            enc_type: text(&object, "enc_type"),
            input: object.get("input").cloned().unwrap_or(Value::Null),
            infno,
        })
    }

    /// Whether the client sent an encrypted input.
    pub fn is_encrypted(&self) -> bool {
        self.input.is_string()
            || self.enc_type.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("SM4"))
    }
}

/// A response envelope (§1.2): `infcode` 0 on success, -1 with `err_msg` on failure.
#[derive(Clone, Debug)]
pub struct Response {
    pub infcode: i32,
    pub inf_refmsgid: String,
    pub refmsg_time: String,
    pub respond_time: String,
    pub err_msg: String,
    pub warn_msg: String,
    pub cainfo: String,
    pub signtype: String,
    /// The output object, or the Base64 text of the encrypted output.
    pub output: Value,
}

impl Response {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "infcode": self.infcode,
            "inf_refmsgid": self.inf_refmsgid,
            "refmsg_time": self.refmsg_time,
            "respond_time": self.respond_time,
            "err_msg": self.err_msg,
            "warn_msg": self.warn_msg,
            "cainfo": self.cainfo,
            "signtype": self.signtype,
            "output": self.output,
        })
    }
}

/// A parsed response, as a client reads it (numbers or strings for `infcode`).
pub fn response_infcode(value: &Value) -> Option<i64> {
    match value.get("infcode")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
