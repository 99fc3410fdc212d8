//! onestop-api: the wire formats of onestop and their parsing into `onestop-core` types.
//!
//! These are the only serialisable types besides the store's rows (ARCHITECTURE.md). Input is
//! accepted as JSON (the API, machines) or TOML (files people write); both go through the same
//! DTOs and the same checks, each with a stable rejection code.

pub mod claim;
pub mod error;
pub mod service;
pub mod settlement;
pub mod settlement_json;
pub mod wire;

use onestop_core::{Rejection, RejectionCode};
use serde::de::DeserializeOwned;

pub use claim::{BillDto, ClaimDto, LineDto, PersonDto, YtdDto};
pub use error::{ErrorBody, ServiceCode, ServiceError};
pub use settlement::SettlementDto;
pub use settlement_json::settlement_json;

/// A document larger than this is refused before it is parsed.
pub const DOCUMENT_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How a document is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Json,
    Toml,
}

impl Format {
    /// By file extension: `.toml` is TOML, anything else JSON.
    pub fn of_path(path: &std::path::Path) -> Format {
        if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("toml")) {
            Format::Toml
        } else {
            Format::Json
        }
    }
}

/// Reads a document into a DTO, mapping every failure to a rejection with its field path.
pub fn read_document<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, Rejection> {
    if text.len() > DOCUMENT_BYTES_MAX {
        return Err(Rejection::new(
            RejectionCode::MalformedInput,
            format!("{} bytes; a document has at most {DOCUMENT_BYTES_MAX}", text.len()),
        ));
    }
    match format {
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                serde_rejection(error.path().to_string(), &error.inner().to_string())
            })?;
            deserializer
                .end()
                .map_err(|error| serde_rejection(String::new(), &error.to_string()))?;
            Ok(value)
        }
        Format::Toml => {
            let deserializer = toml::Deserializer::parse(text)
                .map_err(|error| serde_rejection(String::new(), error.message()))?;
            serde_path_to_error::deserialize(deserializer)
                .map_err(|error| serde_rejection(error.path().to_string(), error.inner().message()))
        }
    }
}

fn serde_rejection(path: String, message: &str) -> Rejection {
    let message = message.trim().to_owned();
    let code = if message.starts_with("unknown field") {
        RejectionCode::UnknownField
    } else if message.starts_with("missing field") {
        RejectionCode::MissingField
    } else {
        RejectionCode::MalformedInput
    };
    // serde names a missing field in its message and the path of the object that lacks it.
    let missing = (code == RejectionCode::MissingField)
        .then(|| message.split('`').nth(1).map(str::to_owned))
        .flatten();
    let rejection = Rejection::new(code, message);
    // serde_path_to_error writes `?` where a syntax error left the position unknown.
    let known = path.split(".?").next().unwrap_or_default().trim_matches('.');
    let known = if known == "?" { "" } else { known };
    match (known, missing) {
        ("", None) => rejection,
        ("", Some(name)) => rejection.field(name),
        (known, Some(name)) => rejection.field(format!("{known}.{name}")),
        (known, None) => rejection.field(known),
    }
}
