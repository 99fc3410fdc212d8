//! The audit log (审计日志): every read of a person's data, and every change to their
//! registration and filings, by whom and when. Rows are only ever inserted; the agency and
//! auditors of the person's insured region read them, and each such read is itself audited.

use onestop_api::service::{AuditEntryDto, AuditLogDto};

use crate::model::{Institution, PersonKey, Role};
use crate::ops::{Answer, Env};
use crate::tx::{Result, Tx};
use onestop_api::error::{ServiceCode, ServiceError};

/// What an audited request did with a person's data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuditAction {
    /// Read the person and their year-to-date totals (`GET /v1/persons`, 1101, 5206).
    ReadPerson,
    /// Registered or updated the person (the answer shows them).
    RegisterPerson,
    /// Read the person's filings.
    ReadFilings,
    /// Filed care in another region for the person.
    File,
    /// Approved a filing.
    ApproveFiling,
    /// Withdrew a filing.
    WithdrawFiling,
    /// Read a visit with its fee lines.
    ReadVisit,
    /// Read a settlement with its explanation (`GET /v1/settlements`, 5203).
    ReadSettlement,
    /// Read the person's audit log.
    ReadAuditLog,
    /// Credited the person's personal account (个人账户划入).
    CreditAccount,
}

impl AuditAction {
    pub const ALL: [AuditAction; 10] = [
        AuditAction::ReadPerson,
        AuditAction::RegisterPerson,
        AuditAction::ReadFilings,
        AuditAction::File,
        AuditAction::ApproveFiling,
        AuditAction::WithdrawFiling,
        AuditAction::ReadVisit,
        AuditAction::ReadSettlement,
        AuditAction::ReadAuditLog,
        AuditAction::CreditAccount,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AuditAction::ReadPerson => "read_person",
            AuditAction::RegisterPerson => "register_person",
            AuditAction::ReadFilings => "read_filings",
            AuditAction::File => "file",
            AuditAction::ApproveFiling => "approve_filing",
            AuditAction::WithdrawFiling => "withdraw_filing",
            AuditAction::ReadVisit => "read_visit",
            AuditAction::ReadSettlement => "read_settlement",
            AuditAction::ReadAuditLog => "read_audit_log",
            AuditAction::CreditAccount => "credit_account",
        }
    }

    /// The action's Chinese name, as a clerk reads it.
    pub fn zh(self) -> &'static str {
        match self {
            AuditAction::ReadPerson => "查询人员信息",
            AuditAction::RegisterPerson => "登记人员信息",
            AuditAction::ReadFilings => "查询备案",
            AuditAction::File => "异地就医备案",
            AuditAction::ApproveFiling => "审核通过备案",
            AuditAction::WithdrawFiling => "撤销备案",
            AuditAction::ReadVisit => "查询就诊信息",
            AuditAction::ReadSettlement => "查询结算信息",
            AuditAction::ReadAuditLog => "查询审计日志",
            AuditAction::CreditAccount => "个人账户划入",
        }
    }

    /// The action a stored code names; `approved` and `withdrawn` are how filings' status
    /// changes were written before the actions had codes of their own.
    pub fn parse(code: &str) -> Option<AuditAction> {
        match code {
            "approved" => Some(AuditAction::ApproveFiling),
            "withdrawn" => Some(AuditAction::WithdrawFiling),
            _ => AuditAction::ALL.into_iter().find(|a| a.code() == code),
        }
    }

    /// The code this action was written with before the actions had codes of their own.
    fn legacy_code(self) -> Option<&'static str> {
        match self {
            AuditAction::ApproveFiling => Some("approved"),
            AuditAction::WithdrawFiling => Some("withdrawn"),
            _ => None,
        }
    }
}

/// The interface a request came by (渠道), as its audit rows name it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Channel {
    /// The JSON API (`/v1`).
    Api,
    /// The national interface (`/fsi`, or forwarded by another node): the transaction's number
    /// and the message's id; `replayed` when a repeated `msgid` was answered with the first
    /// answer.
    Nhsa { infno: String, msgid: String, replayed: bool },
    /// A command run on the server itself (`onestop serve --register`, a test).
    Local,
}

impl Channel {
    /// Every channel's [`Channel::name`].
    pub const NAMES: [&'static str; 3] = ["v1", "nhsa", "local"];

    /// The channel's name on the wire: `v1`, `nhsa` or `local`.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Api => "v1",
            Channel::Nhsa { .. } => "nhsa",
            Channel::Local => "local",
        }
    }

    /// The text stored in the audit row's `channel` column. An `infno` is four digits (an
    /// unknown transaction is refused before anything is audited), which the `msgid` filter
    /// of [`AuditQuery`] relies on.
    pub fn stored(&self) -> String {
        if let Channel::Nhsa { infno, .. } = self {
            debug_assert!(infno.len() == 4 && infno.bytes().all(|b| b.is_ascii_digit()));
        }
        match self {
            Channel::Api | Channel::Local => self.name().to_owned(),
            Channel::Nhsa { infno, msgid, replayed: false } => format!("nhsa:{infno}:{msgid}"),
            Channel::Nhsa { infno, msgid, replayed: true } => {
                format!("nhsa-replay:{infno}:{msgid}")
            }
        }
    }

    /// The channel a stored text names; `None` for rows written before channels were kept
    /// (stored as the empty text).
    pub fn parse(stored: &str) -> Option<Channel> {
        match stored {
            "v1" => Some(Channel::Api),
            "local" => Some(Channel::Local),
            _ => {
                let mut parts = stored.splitn(3, ':');
                let replayed = match parts.next()? {
                    "nhsa" => false,
                    "nhsa-replay" => true,
                    _ => return None,
                };
                let infno = parts.next()?.to_owned();
                let msgid = parts.next()?.to_owned();
                Some(Channel::Nhsa { infno, msgid, replayed })
            }
        }
    }
}

/// Writes an audit row about the person: `actor` did `action` (`detail` says to what) now, by
/// the request's channel.
pub fn record(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    key: &PersonKey,
    actor: &str,
    action: AuditAction,
    detail: &str,
) -> Result<()> {
    tx.insert_audit(&AuditRow {
        region: key.region_text(),
        person_id: key.person_id.clone(),
        audit_id: new_audit_id(),
        at: env.now.clone(),
        actor: actor.to_owned(),
        action: action.code().to_owned(),
        detail: detail.to_owned(),
        channel: env.channel.stored(),
    })
}

/// The last audit id's clock reading, in microseconds since 1970.
static LAST_AUDIT_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A new audit id: the clock in microseconds, never less than the last id's plus one (so that
/// a process's rows of one instant sort in the order written), then random hex (so that two
/// processes never make the same id).
pub(crate) fn new_audit_id() -> String {
    use std::sync::atomic::Ordering;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let previous = LAST_AUDIT_CLOCK
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(clock.max(last + 1)))
        .unwrap_or_else(|last| last);
    let reading = clock.max(previous + 1);
    format!("{reading:016x}{}", hex::encode(rand::random::<[u8; 4]>()))
}

/// A stored audit row.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuditRow {
    pub region: String,
    pub person_id: String,
    pub audit_id: String,
    /// RFC 3339, with milliseconds and the service's offset: text order is time order.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
    /// [`Channel::stored`]; empty for rows written before channels were kept.
    pub channel: String,
}

/// Which audit rows to read: those of one insured region, narrowed by person, actor and days,
/// in time order after a cursor.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AuditQuery {
    pub region: String,
    pub person_id: Option<String>,
    pub actor: Option<String>,
    /// The first day read, `YYYY-MM-DD`.
    pub from: Option<String>,
    /// The day after the last day read, `YYYY-MM-DD`.
    pub until: Option<String>,
    /// The `(at, audit_id)` of the last row already read.
    pub after: Option<(String, String)>,
    /// Only rows of this action; `None` is every action but [`AuditAction::ReadAuditLog`], so
    /// that reading the log does not grow what is read.
    pub action: Option<AuditAction>,
    /// Only rows that came by this channel ([`Channel::name`]: `v1`, `nhsa` or `local`); for
    /// `nhsa`, replays too.
    pub channel: Option<&'static str>,
    /// Only rows of the national interface's message with this `msgid`, replays too.
    pub msgid: Option<String>,
    /// At most this many rows.
    pub limit: u32,
}

impl AuditQuery {
    /// The `WHERE` clause with its arguments in order, the placeholder of argument `n` (from
    /// 1) written by `mark`, so that both dialects build the same statement.
    pub(crate) fn clause(&self, mark: impl Fn(usize) -> String) -> (String, Vec<&str>) {
        let mut conditions: Vec<(&str, &str)> = vec![("region = #", &self.region)];
        let narrowing = [
            (" AND person_id = #", &self.person_id),
            (" AND actor = #", &self.actor),
            (" AND at >= #", &self.from),
            (" AND at < #", &self.until),
        ];
        for (condition, value) in narrowing {
            if let Some(value) = value {
                conditions.push((condition, value));
            }
        }
        match self.action {
            Some(action) => match action.legacy_code() {
                Some(legacy) => {
                    conditions.push((" AND (action = #", action.code()));
                    conditions.push((" OR action = #)", legacy));
                }
                None => conditions.push((" AND action = #", action.code())),
            },
            None => conditions.push((" AND action <> #", AuditAction::ReadAuditLog.code())),
        }
        if let Some(channel) = self.channel {
            // `nhsa:<infno>:<msgid>` and `nhsa-replay:<infno>:<msgid>`; the others as named.
            let pattern = if channel == "nhsa" { "nhsa%" } else { channel };
            conditions.push((" AND channel LIKE #", pattern));
        }
        if let Some(msgid) = &self.msgid {
            // The text after `nhsa:<infno>:` or `nhsa-replay:<infno>:`, compared whole (a
            // `msgid` may hold a `:`); an audited infno is a transaction's four digits.
            conditions.push((
                " AND (substr(channel, 1, 5) = 'nhsa:' AND substr(channel, 11) = CAST(# AS TEXT)",
                msgid,
            ));
            conditions.push((
                " OR substr(channel, 1, 12) = 'nhsa-replay:' AND substr(channel, 18) = \
                 CAST(# AS TEXT))",
                msgid,
            ));
        }
        if let Some((at, audit_id)) = &self.after {
            conditions.push((" AND (at > #", at));
            conditions.push((" OR (at = #", at));
            conditions.push((" AND audit_id > #))", audit_id));
        }
        let mut clause = String::new();
        for (n, (condition, _)) in conditions.iter().enumerate() {
            clause.push_str(&condition.replace('#', &mark(n + 1)));
        }
        (clause, conditions.into_iter().map(|(_, value)| value).collect())
    }

    /// The whole statement, its limit the argument after the clause's: one statement per shape
    /// of the clause (at most 384), so that prepared statements are reused.
    pub(crate) fn select(&self, mark: impl Fn(usize) -> String) -> (String, Vec<&str>) {
        let (clause, args) = self.clause(&mark);
        let sql = format!(
            "SELECT region, person_id, audit_id, at, actor, action, detail, channel FROM \
            audit_log \
            WHERE {clause} ORDER BY at, audit_id LIMIT {}",
            mark(args.len() + 1)
        );
        (sql, args)
    }
}

/// At most this many rows in one page of the audit log.
pub const PAGE_MAX: u32 = 1_000;
/// Rows in a page when the request does not say.
pub const PAGE_DEFAULT: u32 = 100;

/// A page of the audit log of the actor's region (agency or auditor). Each person whose rows
/// the page shows gets a row of their own saying who read them.
pub fn list(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    query: &AuditQuery,
) -> Result<Answer<AuditLogDto>> {
    if actor.role == Role::Institution || actor.region.to_string() != query.region {
        let error = ServiceError::new(
            ServiceCode::Forbidden,
            format!(
                "only the agency and auditors of region {} read its audit log; `{}` is an {} of \
                 region {}",
                query.region,
                actor.institution_id,
                actor.role.code(),
                actor.region
            ),
        );
        return Ok(Err(error));
    }
    assert!((1..=PAGE_MAX).contains(&query.limit));
    // One more row than asked says whether more follow.
    let mut rows = tx.audit_rows(&AuditQuery { limit: query.limit + 1, ..query.clone() })?;
    let more = rows.len() > query.limit as usize;
    rows.truncate(query.limit as usize);
    // The cursor after the last row, to read on now or later; the one given for an empty page.
    let next = match rows.last() {
        Some(row) => Some(cursor(&row.at, &row.audit_id)),
        None => query.after.as_ref().map(|(at, audit_id)| cursor(at, audit_id)),
    };
    let mut read: Vec<&str> = rows.iter().map(|r| r.person_id.as_str()).collect();
    read.sort_unstable();
    read.dedup();
    let detail = audit_detail(query);
    for person_id in read {
        let key = PersonKey::new(actor.region, person_id)
            .ok_or_else(|| crate::tx::StoreError::Corrupt(format!("person id `{person_id}`")))?;
        record(tx, env, &key, &actor.institution_id, AuditAction::ReadAuditLog, &detail)?;
    }
    let entries = rows.into_iter().map(entry).collect();
    Ok(Ok(AuditLogDto { region: query.region.clone(), entries, more, next }))
}

/// The cursor of the page after the row `(at, audit_id)`: opaque, and safe in a URL as it is
/// (a timestamp's `+` is not).
pub fn cursor(at: &str, audit_id: &str) -> String {
    format!("{}.{audit_id}", hex::encode(at))
}

/// The `(at, audit_id)` a cursor names.
pub fn parse_cursor(text: &str) -> Option<(String, String)> {
    let (at, audit_id) = text.split_once('.')?;
    let at = String::from_utf8(hex::decode(at).ok()?).ok()?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    (plain(&at) && plain(audit_id) && audit_id.len() <= 64).then(|| (at, audit_id.to_owned()))
}

/// What an audit-log read asked for, for its own audit row.
fn audit_detail(query: &AuditQuery) -> String {
    let mut detail = format!("audit log of region {}", query.region);
    if let Some(person_id) = &query.person_id {
        detail.push_str(&format!(" of person {person_id}"));
    }
    if let Some(actor) = &query.actor {
        detail.push_str(&format!(" by {actor}"));
    }
    if let Some(from) = &query.from {
        detail.push_str(&format!(" from {from}"));
    }
    if let Some(until) = &query.until {
        detail.push_str(&format!(" before {until}"));
    }
    if let Some(action) = query.action {
        detail.push_str(&format!(", action {}", action.code()));
    }
    if let Some(channel) = query.channel {
        detail.push_str(&format!(", channel {channel}"));
    }
    if let Some(msgid) = &query.msgid {
        detail.push_str(&format!(", msgid {msgid}"));
    }
    if let Some((at, _)) = &query.after {
        detail.push_str(&format!(", after {at}"));
    }
    detail.push_str(&format!(", limit {}", query.limit));
    detail
}

fn entry(row: AuditRow) -> AuditEntryDto {
    let action = AuditAction::parse(&row.action);
    let channel = Channel::parse(&row.channel);
    let (infno, msgid, replayed) = match &channel {
        Some(Channel::Nhsa { infno, msgid, replayed }) => {
            (Some(infno.clone()), Some(msgid.clone()), *replayed)
        }
        _ => (None, None, false),
    };
    AuditEntryDto {
        at: row.at,
        actor: row.actor,
        action: action.map_or(row.action, |a| a.code().to_owned()),
        action_zh: action.map_or("", AuditAction::zh).to_owned(),
        person_id: row.person_id,
        insured_region: row.region,
        detail: row.detail,
        channel: channel.as_ref().map(|c| c.name().to_owned()),
        infno,
        msgid,
        replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_from_its_code() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.code()), Some(action));
            assert!(!action.zh().is_empty());
        }
        assert_eq!(AuditAction::parse("approved"), Some(AuditAction::ApproveFiling));
        assert_eq!(AuditAction::parse("withdrawn"), Some(AuditAction::WithdrawFiling));
        assert_eq!(AuditAction::parse("delete_everything"), None);
    }

    #[test]
    fn audit_ids_sort_in_the_order_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_audit_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert!(ids.iter().all(|id| id.len() == 24));
    }

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        let at = "2026-11-25T09:00:00.000+08:00";
        let text = cursor(at, "0001ab");
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'), "{text}");
        assert_eq!(parse_cursor(&text), Some((at.to_owned(), "0001ab".to_owned())));
        for bad in ["", "nonsense", "zz.01", ".01", "3031.", "3031.a b"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_clause_numbers_its_arguments_in_order() {
        let query = AuditQuery {
            region: "110000".into(),
            actor: Some("H1".into()),
            until: Some("2026-01-02".into()),
            after: Some(("2026-01-01T09:00:00.000+08:00".into(), "ab".into())),
            limit: 10,
            ..AuditQuery::default()
        };
        let (clause, args) = query.clause(|n| format!("${n}"));
        assert_eq!(
            clause,
            "region = $1 AND actor = $2 AND at < $3 AND action <> $4 AND (at > $5 OR (at = $6 AND \
             audit_id > $7))"
        );
        assert_eq!(
            args,
            [
                "110000",
                "H1",
                "2026-01-02",
                "read_audit_log",
                "2026-01-01T09:00:00.000+08:00",
                "2026-01-01T09:00:00.000+08:00",
                "ab"
            ]
        );
    }

    #[test]
    fn a_filing_action_also_reads_the_rows_written_under_its_old_code() {
        let query = AuditQuery {
            region: "110000".into(),
            action: Some(AuditAction::ApproveFiling),
            limit: 10,
            ..AuditQuery::default()
        };
        let (clause, args) = query.clause(|n| format!("?{n}"));
        assert_eq!(clause, "region = ?1 AND (action = ?2 OR action = ?3)");
        assert_eq!(args, ["110000", "approve_filing", "approved"]);
    }

    #[test]
    fn every_channel_reads_back_from_what_is_stored() {
        let channels = [
            Channel::Api,
            Channel::Local,
            Channel::Nhsa { infno: "1101".into(), msgid: "H1:2026:01".into(), replayed: false },
            Channel::Nhsa { infno: "5203".into(), msgid: "M-1".into(), replayed: true },
        ];
        for channel in channels {
            assert_eq!(Channel::parse(&channel.stored()), Some(channel.clone()), "{channel:?}");
            assert!(Channel::NAMES.contains(&channel.name()), "{channel:?}");
        }
        for unknown in ["", "v2", "nhsa", "nhsa:1101", "fax:1:2"] {
            assert_eq!(Channel::parse(unknown), None, "{unknown}");
        }
    }
}
