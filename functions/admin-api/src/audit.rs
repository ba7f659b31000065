//! The audit trail: one command by its id (`GET /commands/{id}`) and the commands of a day
//! (`GET /audit?day=YYYY-MM-DD`), a page at a time. The records are the command log's
//! (see [`crate::command_log`]): who, what, why, when, and the answer each got.

use serde_json::json;

use crate::command_log::check_command_id;
use crate::reads::{decode_token, encode_token, page_size};
use crate::{ApiError, Deps, Request, Response};

/// One command: its record and its first answer.
pub(crate) async fn command(deps: &Deps, id: &str) -> Result<Response, ApiError> {
    check_command_id(id)?;
    match deps.commands.get(id).await? {
        Some(r) => Ok(Response::ok(json!(r))),
        None => Err(ApiError::not_found("unknown-command", "no command has this id")),
    }
}

/// The commands of a day (UTC), in time order.
pub(crate) async fn audit(deps: &Deps, req: &Request) -> Result<Response, ApiError> {
    let day = req
        .query
        .get("day")
        .ok_or_else(|| ApiError::bad("missing-day", "audit needs ?day=YYYY-MM-DD (UTC)"))?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| ApiError::bad("invalid-day", "day must be YYYY-MM-DD"))?;
    let limit = page_size(req)?;
    let start = decode_token(req)?;
    let (records, next) = deps.commands.by_day(day, limit, start).await?;
    Ok(Response::ok(json!({
        "day": day,
        "commands": records,
        "next": next.as_ref().map(encode_token),
    })))
}
