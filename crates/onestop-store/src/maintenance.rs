//! Maintenance windows (系统维护): a region's agency announces when settlement for its people
//! stops and resumes; the service refuses institutions' requests for those people inside a
//! window, at once, with the window's end.

use onestop_api::service::{MaintenanceWindowDto, MaintenanceWindowRequest};
use onestop_api::{ServiceCode, ServiceError};

use crate::model::{Institution, MaintenanceWindow, Role};
use crate::ops::{Answer, Env, forbidden};
use crate::tx::{Result, Tx};

/// The longest window, in hours.
pub const WINDOW_HOURS_MAX: i64 = 7 * 24;
/// Windows not yet over that one region may have announced.
pub const WINDOWS_PER_REGION_MAX: usize = 32;

fn invalid(field: &str, message: String) -> ServiceError {
    ServiceError::new(ServiceCode::MaintenanceWindowInvalid, message).field(field)
}

fn time(text: &str, field: &str) -> Answer<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().map_err(|_| {
        let message = format!("`{text}` is not a time such as 2024-06-15T22:00:00+08:00");
        invalid(field, message)
    })
}

/// The wire form of a window: times at UTC+8.
pub fn dto(window: &MaintenanceWindow) -> MaintenanceWindowDto {
    MaintenanceWindowDto {
        window_id: window.window_id.clone(),
        region: window.region.to_string(),
        starts_at: crate::sqlite_tx::time_text(window.starts_at),
        ends_at: crate::sqlite_tx::time_text(window.ends_at),
        reason: window.reason.clone(),
    }
}

/// An agency announces a window for its region.
pub fn announce(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    now: jiff::Timestamp,
    request: &MaintenanceWindowRequest,
) -> Result<Answer<MaintenanceWindowDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let window = match parse(actor, now, request) {
        Ok(window) => window,
        Err(error) => return Ok(Err(error)),
    };
    let open: Vec<MaintenanceWindow> =
        tx.windows()?.into_iter().filter(|w| w.region == actor.region && w.ends_at > now).collect();
    if open.len() >= WINDOWS_PER_REGION_MAX {
        let message = format!("a region has at most {WINDOWS_PER_REGION_MAX} windows to come");
        return Ok(Err(invalid("starts_at", message)));
    }
    // Windows of one region never overlap, so that the end a refusal names is when settlement
    // resumes (a longer window is announced from the end of the one before, or replaces it).
    if let Some(other) =
        open.iter().find(|w| w.starts_at < window.ends_at && window.starts_at < w.ends_at)
    {
        let other = dto(other);
        let message = format!(
            "the window overlaps {} ({} to {}); cancel it and announce the whole, or start this \
             one at its end",
            other.window_id, other.starts_at, other.ends_at
        );
        return Ok(Err(invalid("starts_at", message)));
    }
    let window = MaintenanceWindow { created_at: env.now.clone(), ..window };
    tx.insert_window(&window)?;
    Ok(Ok(dto(&window)))
}

fn parse(
    actor: &Institution,
    now: jiff::Timestamp,
    request: &MaintenanceWindowRequest,
) -> Answer<MaintenanceWindow> {
    let starts_at = time(&request.starts_at, "starts_at")?;
    let ends_at = time(&request.ends_at, "ends_at")?;
    if ends_at <= starts_at || ends_at <= now {
        return Err(invalid("ends_at", "a window ends after it starts and after now".to_owned()));
    }
    let seconds = ends_at.as_second() - starts_at.as_second();
    if seconds > WINDOW_HOURS_MAX * 3600 {
        return Err(invalid("ends_at", format!("a window lasts at most {WINDOW_HOURS_MAX} hours")));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(invalid("reason", "a reason has 1 to 200 characters".to_owned()));
    }
    let stamp = crate::sqlite_tx::time_text(starts_at);
    let digits: String = stamp.chars().filter(char::is_ascii_digit).take(12).collect();
    let suffix = crate::people::new_token();
    Ok(MaintenanceWindow {
        window_id: format!("M-{}-{digits}-{}", actor.region, suffix.get(..6).unwrap_or_default()),
        region: actor.region,
        starts_at,
        ends_at,
        reason: reason.to_owned(),
        created_by: actor.institution_id.clone(),
        created_at: String::new(),
        cancelled_at: None,
    })
}

/// An agency cancels a window of its region.
pub fn cancel(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    window_id: &str,
) -> Result<Answer<MaintenanceWindowDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let found = tx.windows()?.into_iter().find(|w| w.window_id == window_id);
    let Some(window) = found.filter(|w| w.region == actor.region) else {
        return Ok(Err(ServiceError::new(
            ServiceCode::MaintenanceWindowNotFound,
            format!("region {} has no window `{window_id}` in force", actor.region),
        )));
    };
    tx.cancel_window(window_id, &env.now)?;
    Ok(Ok(dto(&window)))
}
