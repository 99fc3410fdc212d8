//! The national interface across a federation (跨统筹区联网): a message about a person whose
//! region another node holds is forwarded to that node, as `/v1` requests are (`gateway`).
//!
//! This node authenticates the institution, checks its sign-in, decrypts the input and checks
//! the insured region's maintenance windows; the insured node answers the message in one
//! transaction with the record of its `msgid` (so a repeated `msgid` replays there, and never
//! settles twice), and this node seals the answer for the institution. Nothing is written here
//! before the answer: a lost answer leaves nothing half-done, and sending the same `msgid` again
//! learns the outcome. Every settlement or reversal answered is fetched from the insured node and
//! recorded here as a visitor settlement, for the institution's reconciliation and clearing.

use axum::http::{Method, header};
use onestop_core::Region;
use onestop_nhsa::envelope::Request;
use onestop_store::Institution;
use onestop_store::model::parse_id;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::AppState;
use crate::federation::{Federation, Peer};
use crate::gateway;
use crate::nhsa::{CALL_SERVICE, Failure};

/// Transactions about the institution itself (sign-in, reconciliation), answered where they
/// arrive; every other one is about a person.
const INSTITUTION_OWN: [&str; 4] = ["9001", "9002", "3201", "3202"];

/// Transactions whose answer is a settlement or a reversal (`setlinfo.setl_id`).
const ANSWER_SETTLEMENTS: [&str; 6] = ["2207", "2304", "2208", "2305", "2601", "5203"];

/// Transactions that settle: a lost answer is asked about later (`resolve_pending`), by the
/// visit they name.
const SETTLES: [&str; 2] = ["2207", "2304"];

/// Transactions that cancel a settlement: a lost answer is asked about later, by the
/// settlement they name.
const CANCELS: [&str; 2] = ["2208", "2305"];

/// The ids a message names, in the order its region is told by.
const IDS: [&str; 2] = ["mdtrt_id", "setl_id"];

/// How deep an input is searched for the visit or settlement id it names.
const ID_DEPTH_MAX: usize = 3;

/// The insured region a message is about, `None` for the institution's own transactions: the
/// region of the first visit or settlement id the input names (`mdtrt_id`, `setl_id`: ids carry
/// their region), else the envelope's `insuplc_admdvs`, else the institution's region.
pub fn message_region(request: &Request, input: &Value, actor: &Institution) -> Option<Region> {
    if INSTITUTION_OWN.contains(&request.infno.as_str()) {
        return None;
    }
    let named = named_id(input, &IDS, 0).and_then(parse_id).map(|(_, key)| key.region);
    let envelope = request.insuplc_admdvs.as_deref().and_then(Region::parse);
    Some(named.or(envelope).unwrap_or(actor.region))
}

fn named_id<'v>(value: &'v Value, keys: &[&str], depth: usize) -> Option<&'v str> {
    if depth > ID_DEPTH_MAX {
        return None;
    }
    match value {
        Value::Object(object) => keys
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str).filter(|id| !id.is_empty()))
            .or_else(|| object.values().find_map(|inner| named_id(inner, keys, depth + 1))),
        Value::Array(items) => items.iter().find_map(|inner| named_id(inner, keys, depth + 1)),
        _ => None,
    }
}

/// The envelope as forwarded: the institution's, with its input in the clear.
#[derive(serde::Serialize)]
struct Forwarded<'a> {
    #[serde(flatten)]
    envelope: &'a Map<String, Value>,
    input: &'a RawValue,
}

/// What the peer is sent: the envelope without its encryption and signature (this node
/// checked them), the transaction code in it, and `plain_text`, the input as the institution
/// wrote it, so that the peer's record of the `msgid` hashes the same request.
fn forwarded_body(request: &Request, body: &[u8], plain_text: &str) -> Result<Vec<u8>, Failure> {
    let unreadable = |e: serde_json::Error| Failure(format!("报文无法转发 cannot forward: {e}"));
    let mut envelope: Map<String, Value> = serde_json::from_slice(body).map_err(unreadable)?;
    for key in ["input", "enc_type", "cainfo", "signtype"] {
        envelope.remove(key);
    }
    envelope.insert("infno".into(), Value::String(request.infno.clone()));
    let input = RawValue::from_string(plain_text.to_owned()).map_err(unreadable)?;
    serde_json::to_vec(&Forwarded { envelope: &envelope, input: &input }).map_err(unreadable)
}

/// Forwards the message to `peer` as `actor` and returns the envelope it answered (in the
/// clear: the caller seals it).
pub async fn forward(
    state: &AppState,
    federation: &Federation,
    peer: &Peer,
    actor: &Institution,
    request: &Request,
    (body, plain_text, input): (&[u8], &str, &Value),
    region: Region,
) -> Result<Value, Failure> {
    let sent = forwarded_body(request, body, plain_text)?;
    let call = gateway::peer_request(federation, peer, actor, Method::POST, CALL_SERVICE)
        .header(header::CONTENT_TYPE, "application/json")
        .body(sent);
    let answer = async {
        let response = call.send().await?;
        Ok::<_, reqwest::Error>((response.status(), response.bytes().await?))
    }
    .await;
    let (status, bytes) = match answer {
        Ok(answer) => answer,
        Err(error) if error.is_connect() => {
            tracing::warn!(peer = %peer.name, %error, "insured region unreachable");
            return Err(Failure(format!(
                "参保地 region {region} 的节点 {} 无法连接 cannot be reached: nothing was sent and \
                 nothing was settled; retry later",
                peer.name
            )));
        }
        Err(error) => {
            tracing::warn!(peer = %peer.name, %error, "insured region did not answer in time");
            // Asked about later by the visit a settle names, or the settlement a cancel names.
            let infno = request.infno.as_str();
            let lost = if SETTLES.contains(&infno) {
                named_id(input, &["mdtrt_id"], 0)
            } else if CANCELS.contains(&infno) {
                named_id(input, &["setl_id"], 0)
            } else {
                None
            };
            if let Some(id) = lost {
                gateway::remember_pending(state, actor, id, &request.msgid).await;
            }
            return Err(Failure(format!(
                "参保地 region {region} 的节点 {} 未在 {} ms 内应答 did not answer in time: the \
                 outcome is unknown; send the same msgid again to learn it (it never settles \
                 twice), or reverse it with 2601",
                peer.name,
                federation.timeout.as_millis()
            )));
        }
    };
    let envelope: Option<Value> = serde_json::from_slice(&bytes).ok();
    let envelope = match envelope {
        Some(envelope) if status.is_success() && envelope.get("infcode").is_some() => envelope,
        _ => {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.chars().take(200).collect();
            return Err(Failure(format!(
                "参保地 region {region} 的节点 {} 拒绝了转发 refused the forwarded message \
                 (HTTP {status}): {text}",
                peer.name
            )));
        }
    };
    if onestop_nhsa::envelope::response_infcode(&envelope) == Some(0) {
        record(state, federation, peer, actor, request, &envelope).await;
    }
    Ok(envelope)
}

/// Records here the settlement or reversal a successful answer names, as the insured node
/// keeps it; a settle whose record cannot be fetched now is asked about later.
async fn record(
    state: &AppState,
    federation: &Federation,
    peer: &Peer,
    actor: &Institution,
    request: &Request,
    envelope: &Value,
) {
    if !ANSWER_SETTLEMENTS.contains(&request.infno.as_str()) {
        return;
    }
    let setlinfo = &envelope["output"]["setlinfo"];
    let Some(settlement) = setlinfo["setl_id"].as_str().filter(|id| !id.is_empty()) else {
        return;
    };
    let path = format!("/v1/settlements/{settlement}");
    let fetched = async {
        let response =
            gateway::peer_request(federation, peer, actor, Method::GET, &path).send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.bytes().await?))
    }
    .await;
    match fetched {
        Ok((status, body)) if status.is_success() => {
            gateway::journal(state, federation, actor, &Method::GET, &path, &body).await;
        }
        outcome => {
            let error = outcome.map_or_else(|e| e.to_string(), |(status, _)| status.to_string());
            tracing::warn!(%settlement, %error, "visitor settlement not fetched");
            // Asked about later: a settle by its visit, anything else by the settlement or
            // reversal the answer names.
            let visit = setlinfo["mdtrt_id"].as_str().filter(|visit| !visit.is_empty());
            let id = match visit {
                Some(visit) if SETTLES.contains(&request.infno.as_str()) => visit,
                _ => settlement,
            };
            gateway::remember_pending(state, actor, id, &request.msgid).await;
        }
    }
}
