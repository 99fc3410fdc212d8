//! The national interface for designated institutions: `POST .../callService` (transaction
//! code in the envelope's `infno`) and `.../callService/{infno}`. One JSON envelope in, one out,
//! always HTTP 200: success is `infcode` 0, failure `infcode` -1 with `err_msg`.
//!
//! Around the transactions (`nhsa_tx`): reading the envelope leniently, decrypting and verifying
//! the encrypted and signed mode, authenticating the institution, requiring sign-in where the
//! region says so, refusing messages about a region inside its maintenance window, forwarding
//! those about another node's people (`nhsa_forward`), and replaying the first answer of a
//! repeated `msgid`. The transaction and
//! the record of its message commit together, so a `msgid` is answered once and never settles
//! twice.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use onestop_core::Region;
use onestop_nhsa::envelope::Request;
use onestop_nhsa::{crypto, envelope};
use onestop_store::audit::Channel;
use onestop_store::model::{NhsaKeys, NhsaMessage};
use onestop_store::{Env, Institution, Role, people};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::json_response;
use crate::extract::Path;
use crate::federation::Route;
use crate::gateway::{self, Forwarded};
use crate::nhsa_forward;
use crate::routes::Body;

pub const CALL_SERVICE: &str = "/fsi/api/rsfComIfsService/callService";

/// A failed call: what `err_msg` says.
pub struct Failure(pub String);

impl From<onestop_store::StoreError> for Failure {
    fn from(error: onestop_store::StoreError) -> Failure {
        Failure(format!("服务内部错误 the store failed: {error}; retry with the same msgid"))
    }
}

impl From<crypto::CryptoError> for Failure {
    fn from(error: crypto::CryptoError) -> Failure {
        Failure(error.0)
    }
}

/// The institution a peer node authenticated, on a message it forwarded here.
type FromPeer = Option<Extension<Forwarded>>;

pub async fn call_service(
    state: State<AppState>,
    from_peer: FromPeer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, None, from_peer, headers, body).await
}

pub async fn call_service_with_infno(
    state: State<AppState>,
    Path(infno): Path<String>,
    from_peer: FromPeer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Some(infno), from_peer, headers, body).await
}

/// `yyyyMMddHHmmssSSS`.
fn stamp(state: &AppState) -> String {
    let now = (state.clock)();
    now.strftime("%Y%m%d%H%M%S%3f").to_string()
}

/// The answer's envelope; `inf_refmsgid` starts with `region`, the message's division of the
/// place of treatment (`mdtrtarea_admvs`), `000000` when the message names none.
fn envelope_json(
    state: &AppState,
    received: &str,
    region: Option<&str>,
    outcome: Result<Value, Failure>,
) -> Value {
    let region = region.and_then(Region::parse).map_or("000000".to_owned(), |r| r.to_string());
    let (infcode, err_msg, output) = match outcome {
        Ok(output) => (0, "成功".to_owned(), output),
        Err(Failure(message)) => (-1, message, json!({})),
    };
    let respond = stamp(state);
    let sequence: u64 = rand::random::<u64>() % 10_000_000_000;
    let reference = format!("{region}{}{sequence:010}", respond.get(..14).unwrap_or(""));
    envelope::Response {
        infcode,
        inf_refmsgid: reference,
        refmsg_time: received.to_owned(),
        respond_time: respond,
        err_msg,
        warn_msg: String::new(),
        cainfo: String::new(),
        signtype: String::new(),
        output,
    }
    .to_json()
}

async fn handle(
    State(state): State<AppState>,
    infno: Option<String>,
    from_peer: FromPeer,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let received = stamp(&state);
    let answered = match from_peer {
        Some(Extension(Forwarded(actor))) => {
            answer_forwarded(&state, actor, infno.as_deref(), &body, &received).await
        }
        None => answer(&state, infno.as_deref(), &headers, &body, &received).await,
    };
    let answer = match answered {
        Ok(answer) => answer,
        Err(failure) => {
            let request = Request::parse(&body, infno.as_deref()).ok();
            let region = request.and_then(|r| r.mdtrtarea_admvs);
            envelope_json(&state, &received, region.as_deref(), Err(failure))
        }
    };
    json_response(200, answer.to_string())
}

/// The input as the client wrote it (for the signature), parsed, and the keys used.
struct Input {
    plain_text: String,
    value: Value,
    keys: Option<NhsaKeys>,
}

fn raw_input(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        input: Option<&'a serde_json::value::RawValue>,
    }
    let raw: Raw<'_> = serde_json::from_slice(body).ok()?;
    raw.input.map(|r| r.get().to_owned())
}

/// Decrypts the input where the institution uses the encrypted mode.
fn decrypt(request: &Request, body: &[u8], keys: Option<NhsaKeys>) -> Result<Input, Failure> {
    match (&request.input, &keys) {
        (Value::String(sealed), Some(k)) => {
            let key = crypto::sm4_key(&k.sm4_key)?;
            let plain = crypto::sm4_decrypt(&key, sealed).map_err(|e| Failure(e.0))?;
            let plain_text = String::from_utf8(plain)
                .map_err(|_| Failure("解密后不是UTF-8 decrypted input is not UTF-8".into()))?;
            let value = serde_json::from_str(&plain_text)
                .map_err(|e| Failure(format!("解密后不是JSON decrypted input is not JSON: {e}")))?;
            Ok(Input { plain_text, value, keys })
        }
        (Value::String(_), None) => Err(Failure(
            "该机构未配置加密密钥 the institution has no SM4 key: send input as an object".into(),
        )),
        (_, Some(k)) if k.encrypted => Err(Failure(
            "该机构须加密传输 this institution must send input encrypted (enc_type SM4)".into(),
        )),
        (value, _) => Ok(Input {
            plain_text: raw_input(body).unwrap_or_else(|| value.to_string()),
            value: value.clone(),
            keys,
        }),
    }
}

/// The institution, authenticated by its bearer token or by an SM2 signature of its input.
async fn authenticate(
    state: &AppState,
    request: &Request,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Institution, Input), Failure> {
    let code = request.fixmedins_code.clone();
    let found =
        state.store.read(move |tx| Ok((tx.institution(&code)?, tx.nhsa_keys(&code)?))).await?;
    let (Some(institution), keys) = found else {
        return Err(Failure(format!(
            "定点机构未注册 institution `{}` is not registered",
            request.fixmedins_code
        )));
    };
    if institution.role != Role::Institution {
        return Err(Failure(
            "只有定点医药机构可调用 only a designated institution may call this interface".into(),
        ));
    }
    let input = decrypt(request, body, keys)?;
    let signed =
        match (&request.cainfo, input.keys.as_ref().and_then(|k| k.sm2_public_key.as_ref())) {
            (Some(cainfo), Some(public)) => {
                crypto::sm2_verify(
                    public,
                    &institution.institution_id,
                    input.plain_text.as_bytes(),
                    cainfo,
                )
                .map_err(|e| Failure(e.0))?;
                true
            }
            _ => false,
        };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let bearer = match token {
        Some(token) if !signed => {
            let actor = match state.cached_actor(&people::token_sha256(&token)) {
                Some(actor) => Some(actor),
                None => state.store.read(move |tx| people::authenticate(tx, &token)).await?,
            };
            actor.is_some_and(|a| a.institution_id == institution.institution_id)
        }
        _ => false,
    };
    if !(signed || bearer) {
        return Err(Failure(
            "认证失败 authentication failed: send the institution's bearer token, \
             or sign the input (cainfo, SM2)"
                .into(),
        ));
    }
    Ok((institution, input))
}

fn request_sha256(infno: &str, input: &str) -> String {
    hex::encode(Sha256::digest(format!("{infno}\n{input}").as_bytes()))
}

/// What a message is recognized by when its `msgid` comes again: its input as JSON, written
/// with sorted keys and no spaces (so a retry that rebuilt the JSON, with other whitespace or
/// key order, is the same request), and, for records written before that, its input's text.
struct RequestHashes {
    canonical: String,
    raw: String,
}

impl RequestHashes {
    fn new(infno: &str, value: &Value, plain_text: &str) -> RequestHashes {
        // serde_json's maps are sorted by key (no `preserve_order`): `to_string` is canonical.
        RequestHashes {
            canonical: request_sha256(infno, &value.to_string()),
            raw: request_sha256(infno, plain_text),
        }
    }

    fn matches(&self, stored: &str) -> bool {
        stored == self.canonical || stored == self.raw
    }
}

async fn answer(
    state: &AppState,
    infno: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    received: &str,
) -> Result<Value, Failure> {
    let request = Request::parse(body, infno).map_err(|e| Failure(e.0))?;
    let (institution, input) = authenticate(state, &request, headers, body).await?;
    check_signed_in(state, &request, &institution).await?;
    if let Some(region) = nhsa_forward::message_region(&request, &input.value, &institution) {
        let federation = state.federation();
        match federation.as_deref().map_or(Route::Local, |f| f.route(region)) {
            Route::Local => refuse_in_window(state, region).await?,
            Route::Unknown => return Err(not_served(region)),
            Route::Peer(peer) => {
                let federation = federation.as_deref().expect("a peer route has a federation");
                if let Some(window) = gateway::peer_window_now(state, federation, peer, region) {
                    return Err(Failure(gateway::maintenance_message(&window)));
                }
                // A 2601 answered here (it named no insured region) took this msgid: the
                // message it reversed is refused here too, never forwarded to settle there.
                let (id, msgid) = (institution.institution_id.clone(), request.msgid.clone());
                let here = state.store.read(move |tx| tx.nhsa_message(&id, &msgid)).await;
                if let Ok(Some(taken)) = here
                    && taken.request_sha256.starts_with(REVERSED_BEFORE_ARRIVAL)
                {
                    return Err(Failure(taken.response));
                }
                let message = (&body[..], input.plain_text.as_str(), &input.value);
                let envelope = nhsa_forward::forward(
                    state,
                    federation,
                    peer,
                    &institution,
                    &request,
                    message,
                    region,
                )
                .await?;
                return seal(state, &request, input.keys.as_ref(), envelope);
            }
        }
    }
    let sha = RequestHashes::new(&request.infno, &input.value, &input.plain_text);
    let stored = transact(state, institution, request.clone(), input.value, sha, received).await?;
    seal(state, &request, input.keys.as_ref(), stored)
}

fn not_served(region: Region) -> Failure {
    Failure(format!("统筹区 region {region} is not served by this node or any of its peers"))
}

/// Refuses a message about a person of `region` inside a maintenance window of this node.
async fn refuse_in_window(state: &AppState, region: Region) -> Result<(), Failure> {
    match gateway::window_now(state, region).await {
        Some(window) => Err(Failure(gateway::maintenance_message(&window))),
        None => Ok(()),
    }
}

/// A message a peer node forwarded: its institution was authenticated there (with its sign-in
/// and its encryption); it is answered here or not at all, never forwarded again.
async fn answer_forwarded(
    state: &AppState,
    actor: Institution,
    infno: Option<&str>,
    body: &Bytes,
    received: &str,
) -> Result<Value, Failure> {
    let request = Request::parse(body, infno).map_err(|e| Failure(e.0))?;
    if actor.role != Role::Institution || actor.institution_id != request.fixmedins_code {
        return Err(Failure(format!(
            "转发的机构不符 the forwarded institution `{}` is not the message's `{}`",
            actor.institution_id, request.fixmedins_code
        )));
    }
    if request.input.is_string() {
        return Err(Failure(
            "转发的报文须为明文 a forwarded message carries its input in the clear".into(),
        ));
    }
    if let Some(region) = nhsa_forward::message_region(&request, &request.input, &actor) {
        let local = state.federation().is_some_and(|f| f.local.contains(&region));
        if !local {
            return Err(not_served(region));
        }
        refuse_in_window(state, region).await?;
    }
    let plain_text = raw_input(body).unwrap_or_else(|| request.input.to_string());
    let sha = RequestHashes::new(&request.infno, &request.input, &plain_text);
    let value = request.input.clone();
    transact(state, actor, request, value, sha, received).await
}

/// Answers the message in one transaction with the record of its `msgid`: a repeated `msgid`
/// replays the first answer. A replayed read of a person's data is audited again (its read is
/// run again for its audit rows, and its answer dropped): the data was sent again.
async fn transact(
    state: &AppState,
    institution: Institution,
    request2: Request,
    value: Value,
    sha: RequestHashes,
    received: &str,
) -> Result<Value, Failure> {
    let (state2, received2) = (state.clone(), received.to_owned());
    let region = request2.mdtrtarea_admvs.clone();
    crate::routes::write(state, move |tx, env| {
        let (infno, msgid) = (&request2.infno, &request2.msgid);
        let channel =
            |replayed| Channel::Nhsa { infno: infno.clone(), msgid: msgid.clone(), replayed };
        if let Some(message) = tx.nhsa_message(&institution.institution_id, msgid)? {
            return Ok(match replay(&message, &sha) {
                Ok(first) => {
                    let answered = first["infcode"].as_i64() == Some(0);
                    if answered && AUDITED_READS.contains(&infno.as_str()) {
                        let env = Env { channel: channel(true), ..env.clone() };
                        // Its answer is dropped: the first one is sent.
                        let _again =
                            crate::nhsa_tx::dispatch(tx, &env, &institution, &request2, &value)?;
                    }
                    first
                }
                Err(refused) => envelope_json(&state2, &received2, region.as_deref(), Err(refused)),
            });
        }
        let env = &Env { channel: channel(false), ..env.clone() };
        let outcome = crate::nhsa_tx::dispatch(tx, env, &institution, &request2, &value)?;
        let envelope = envelope_json(&state2, &received2, region.as_deref(), outcome);
        tx.insert_nhsa_message(&NhsaMessage {
            institution_id: institution.institution_id.clone(),
            msgid: request2.msgid.clone(),
            infno: request2.infno.clone(),
            request_sha256: sha.canonical.clone(),
            response: envelope.to_string(),
            at: env.now.clone(),
        })?;
        Ok(envelope)
    })
    .await
    .map_err(|error| match error {
        crate::ApiError::Service(e) => Failure(e.body.message),
        crate::ApiError::Store(e) => {
            Failure(format!("服务内部错误 the store failed: {e}; retry with the same msgid"))
        }
    })
}

/// The transactions that read a person's data and write nothing but their audit rows.
const AUDITED_READS: [&str; 3] = ["1101", "5203", "5206"];

/// What a message reversed by 2601 before it arrived is recorded with, in place of its
/// request's hash (followed by the reversing msgid).
pub(crate) const REVERSED_BEFORE_ARRIVAL: &str = "reversed-by-2601:";

/// A repeated msgid: the first answer, or a refusal when the request differs or when 2601
/// reversed the msgid before it arrived (its record then holds the refusal's text).
fn replay(message: &NhsaMessage, sha: &RequestHashes) -> Result<Value, Failure> {
    if message.request_sha256.starts_with(REVERSED_BEFORE_ARRIVAL) {
        return Err(Failure(message.response.clone()));
    }
    if !sha.matches(&message.request_sha256) {
        let text = format!(
            "报文ID重复 msgid `{}` was already used for another request ({})",
            message.msgid, message.infno
        );
        return Err(Failure(text));
    }
    Ok(serde_json::from_str(&message.response).unwrap_or(Value::Null))
}

/// Encrypts and signs the output for institutions in the encrypted mode.
fn seal(
    state: &AppState,
    request: &Request,
    keys: Option<&NhsaKeys>,
    mut envelope: Value,
) -> Result<Value, Failure> {
    // The answer is sealed when the input was (a plain input with `enc_type` "SM4" from an
    // institution in the plain mode is answered plain, as it was sent).
    let Some(keys) = keys.filter(|_| request.input.is_string()) else { return Ok(envelope) };
    let plain = envelope["output"].to_string();
    let key = crypto::sm4_key(&keys.sm4_key)?;
    envelope["output"] = json!(crypto::sm4_encrypt(&key, plain.as_bytes()));
    if let Some(private) = &state.nhsa.service_key {
        envelope["cainfo"] = json!(
            crypto::sm2_sign(private, &request.fixmedins_code, plain.as_bytes())
                .map_err(|e| Failure(e.0))?
        );
        envelope["signtype"] = json!("SM2");
    }
    Ok(envelope)
}

async fn check_signed_in(
    state: &AppState,
    request: &Request,
    institution: &Institution,
) -> Result<(), Failure> {
    if request.infno == "9001" || !state.nhsa.sign_in_regions.contains(&institution.region) {
        return Ok(());
    }
    let Some(sign_no) = request.sign_no.clone() else {
        return Err(Failure("未签到 sign in first (9001) and send its sign_no".into()));
    };
    let id = institution.institution_id.clone();
    let open = state.store.read(move |tx| tx.nhsa_session_open(&id, &sign_no)).await?;
    if open {
        Ok(())
    } else {
        Err(Failure("签到已失效 the sign_no is not an open sign-in; sign in again (9001)".into()))
    }
}
