//! `GET /v1/audit-log`: who read or changed a person's data, for the agency and auditors of the
//! person's insured region (审计日志).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use onestop_api::{ServiceCode, ServiceError};
use onestop_store::audit::{self, AuditQuery};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::{answer, write};

pub fn add(router: Router<AppState>) -> Router<AppState> {
    router.route("/v1/audit-log", get(audit_log))
}

/// The query; a parameter not named here is refused, so that a misspelt filter does not read
/// the whole region.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditLogQuery {
    region: Option<String>,
    person_id: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    action: Option<String>,
    channel: Option<String>,
    msgid: Option<String>,
    limit: Option<u32>,
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Service(ServiceError::new(ServiceCode::QueryInvalid, message).field(field))
}

fn day(text: &str, field: &str) -> Result<onestop_core::Date, ApiError> {
    onestop_api::claim::parse_date_as(text, field, ServiceCode::QueryInvalid).map_err(Into::into)
}

/// The store's query from the request's: days checked, `to` made the day after, the cursor
/// split, the page bounded.
fn store_query(query: AuditLogQuery, home: onestop_core::Region) -> Result<AuditQuery, ApiError> {
    let region = match query.region {
        Some(text) => onestop_store::people::region_of(&text)?,
        None => home,
    };
    let limit = query.limit.unwrap_or(audit::PAGE_DEFAULT);
    if !(1..=audit::PAGE_MAX).contains(&limit) {
        let message = format!("limit {limit} is not between 1 and {}", audit::PAGE_MAX);
        return Err(invalid("limit", message));
    }
    let from = query.from.as_deref().map(|text| day(text, "from")).transpose()?;
    let to = query.to.as_deref().map(|text| day(text, "to")).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(invalid("to", format!("the period ends ({to}) before it starts ({from})")));
    }
    let until = to.map(|to| {
        let message = format!("{to} is too late: the last day is 9999-12-30");
        to.tomorrow().map_err(|_| invalid("to", message))
    });
    let after = match query.after {
        None => None,
        Some(cursor) => match audit::parse_cursor(&cursor) {
            Some(after) => Some(after),
            None => {
                let message = format!(
                    "`{cursor}` is not a cursor: pass `after` as the `next` of the page before"
                );
                return Err(invalid("after", message));
            }
        },
    };
    let action = match query.action.as_deref() {
        None => None,
        Some(code) => Some(audit::AuditAction::parse(code).ok_or_else(|| {
            let codes: Vec<&str> = audit::AuditAction::ALL.iter().map(|a| a.code()).collect();
            let message =
                format!("`{code}` is not an action; expected one of: {}", codes.join(", "));
            invalid("action", message)
        })?),
    };
    let (channel, msgid) = channel_filter(query.channel.as_deref(), query.msgid)?;
    Ok(AuditQuery {
        channel,
        msgid,
        region: region.to_string(),
        person_id: filter(query.person_id, "person_id")?,
        actor: filter(query.actor, "actor")?,
        action,
        from: from.map(|d| d.to_string()),
        until: until.transpose()?.map(|d| d.to_string()),
        after,
        limit,
    })
}

/// The channel (`v1`, `nhsa`, `local`) and national message id filters; a `msgid` is of the
/// national interface alone.
fn channel_filter(
    channel: Option<&str>,
    msgid: Option<String>,
) -> Result<(Option<&'static str>, Option<String>), ApiError> {
    let names = audit::Channel::NAMES;
    let channel = match channel {
        None => None,
        Some(name) => Some(names.into_iter().find(|c| *c == name).ok_or_else(|| {
            let message =
                format!("`{name}` is not a channel (渠道); expected one of: {}", names.join(", "));
            invalid("channel", message)
        })?),
    };
    let msgid = filter(msgid, "msgid")?;
    if let (Some(channel), Some(_)) = (channel, &msgid)
        && channel != "nhsa"
    {
        let message = format!(
            "a `msgid` names a message of the national interface (channel `nhsa`), not of \
             channel `{channel}`"
        );
        return Err(invalid("msgid", message));
    }
    if msgid.as_ref().is_some_and(|m| m.len() > 64) {
        return Err(invalid("msgid", "a `msgid` is at most 64 characters".to_owned()));
    }
    Ok((channel, msgid))
}

/// A filter as given; an empty one is refused, so that it never reads the whole region.
fn filter(value: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if value.trim().is_empty() => {
            Err(invalid(field, format!("`{field}` is empty: leave it out to read every one")))
        }
        other => Ok(other),
    }
}

async fn audit_log(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<AuditLogQuery>,
) -> Result<Response, ApiError> {
    let query = store_query(query, actor.region)?;
    // A read of the log is itself audited, so it goes through the writer.
    let done = write(&state, move |tx, env| audit::list(tx, env, &actor, &query)).await?;
    Ok(answer(200, done))
}
