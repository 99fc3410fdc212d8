//! onestop-nhsa: the national medical security platform's interface for designated
//! institutions (定点医药机构接口规范), as `../shared/nhsa-interface.md` describes it: the
//! envelope (`envelope`), the encrypted and signed mode (`crypto`), the dictionaries (`codes`)
//! and the settlement fields (`setl`). Pure: the server maps each transaction onto the service.

pub mod codes;
pub mod crypto;
pub mod envelope;
pub mod setl;

pub use envelope::{EnvelopeError, Request, Response};
