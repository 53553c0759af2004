//! `GET /admin/v1/audit`: the audit log, a page at a time.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError, AppState};

/// The most records one page holds.
const MAX_PAGE: u32 = 1000;

/// Query of `GET /admin/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    after: Option<u64>,
    limit: Option<u32>,
    /// The newest `last` records instead of those after `after`.
    last: Option<u32>,
}

pub(super) async fn page(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid_request(format!("query: {}", e.body_text())))?;
    let store = state.issuance.store();
    let records = match (query.after, query.limit, query.last) {
        (_, _, None) => {
            let limit = query.limit.unwrap_or(100);
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(ApiError::invalid_request(format!(
                    "limit must lie between 1 and {MAX_PAGE}"
                )));
            }
            store.audit_page(query.after.unwrap_or(0), limit).await?
        }
        (None, None, Some(last)) if (1..=MAX_PAGE).contains(&last) => {
            store.audit_tail(last).await?
        }
        _ => {
            return Err(ApiError::invalid_request(format!(
                "last (1 to {MAX_PAGE}) goes alone, without after or limit"
            )));
        }
    };
    let events: Vec<Value> = records
        .into_iter()
        .map(|record| {
            let details: Value =
                serde_json::from_str(&record.details).unwrap_or(Value::String(record.details));
            json!({
                "seq": record.seq,
                "time": record.time,
                "actor": record.actor,
                "action": record.action,
                "subject": record.subject,
                "details": details,
                "hash": record.hash,
                "prev_hash": record.prev_hash,
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}
