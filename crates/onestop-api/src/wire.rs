//! Scalars as clients send them: amounts and codes as strings or numbers.
//!
//! Numbers are kept as the text they denote. A JSON or TOML float is turned back into its
//! shortest round-trip decimal, which is exactly the decimal written for any amount of up to
//! 15 significant digits (every amount the engine accepts), so `0.1` stays `0.1`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A string or a number, as text.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Scalar(pub String);

impl Scalar {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.trim().to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            #[allow(clippy::float_arithmetic)]
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                if !v.is_finite() {
                    return Err(E::custom("a number must be finite"));
                }
                // Rust prints the shortest decimal that reads back as the same f64.
                let text = v.to_string();
                Ok(Scalar(text.strip_suffix(".0").map_or(text.clone(), str::to_owned)))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_the_decimal_written() {
        let parsed: Vec<Scalar> =
            serde_json::from_str(r#"[0.1, 31.77, 613449.15, 1300, "85%", 1e2, 9999999999.99]"#)
                .expect("valid JSON");
        let texts: Vec<&str> = parsed.iter().map(Scalar::as_str).collect();
        assert_eq!(texts, ["0.1", "31.77", "613449.15", "1300", "85%", "100", "9999999999.99"]);
    }
}
