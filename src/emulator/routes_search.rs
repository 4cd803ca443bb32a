//! `POST /data/search/`: Advanced Filtering over leads and contacts, paged by cursors.
//!
//! The query tree supports `and` / `or` (`queries`), `object_type` (`lead`, `contact`),
//! `field_condition` on a `regular_field` (an attribute of the object) or `custom_field`
//! (`custom_field_id`, with or without `cf_`), with conditions `text` (case-insensitive
//! substring), `term` (`values`, exact) and `exists`; any node may carry `negate: true`.
//! Other node, field or condition types answer 400 with a `query` field error.
//!
//! Without `_fields` a result is `{"__object_type": "lead", "id": ...}`; with it, just the
//! listed attributes. `_limit` is 1 to 200 (default 100).
//!
//! The matching set is fixed when a search begins (no cursor) and capped at
//! `search_result_cap` and `results_limit`; each page issues a new cursor valid for
//! `cursor_ttl`, and the last page has `"cursor": null`. See the module header of
//! [`crate::emulator`] for expiry and the cap.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};

use super::reply::{ApiError, Ctx, Reply, project};
use super::state::Shared;
use super::store::{Cursor, Store, str_of};

/// The `cursor` field error of a search whose cursor expired (or was never issued).
pub const CURSOR_EXPIRED: &str =
    "The cursor has expired or is invalid. Repeat the search without a cursor.";

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/v1/data/search/", post(search))
}

async fn search(State(s): State<Shared>, ctx: Ctx) -> Reply {
    let body = ctx.object()?;
    let limit = match body.get("_limit") {
        None | Some(Value::Null) => 100,
        Some(n) => match n.as_u64() {
            Some(n @ 1..=200) => n as usize,
            _ => return Err(ApiError::field("_limit", "Must be between 1 and 200.")),
        },
    };
    let org = ctx.caller.org.clone();
    let now = tokio::time::Instant::now();
    let mut store = s.store();
    store.cursors.retain(|_, c| c.expires > now);
    let (results, offset) = match body.get("cursor").and_then(Value::as_str) {
        Some(token) if !token.is_empty() => match store.cursors.get(token) {
            Some(c) if c.org == org => (c.results.clone(), c.offset),
            _ => return Err(ApiError::field("cursor", CURSOR_EXPIRED)),
        },
        _ => {
            let mut cap = s.config.search_result_cap;
            if let Some(n) = body.get("results_limit").and_then(Value::as_u64) {
                cap = cap.min(usize::try_from(n).unwrap_or(usize::MAX));
            }
            (Arc::new(evaluate(&store, &org, body, cap)?), 0)
        }
    };
    let end = results.len().min(offset.saturating_add(limit));
    let page = results.get(offset..end).unwrap_or_default();
    let fields = body.get("_fields").and_then(Value::as_object);
    let data: Vec<Value> = page
        .iter()
        .filter_map(|(kind, id)| render(&store, &org, kind, id, fields))
        .collect();
    let cursor = if end < results.len() {
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(64)
            .map(char::from)
            .collect();
        let expires = now + s.config.cursor_ttl;
        let next = Cursor {
            org,
            results,
            offset: end,
            expires,
        };
        store.cursors.insert(token.clone(), next);
        Value::String(token)
    } else {
        Value::Null
    };
    Ok(Json(json!({ "data": data, "cursor": cursor })))
}

/// Every match of the body's query, sorted, at most `cap`.
fn evaluate(
    store: &Store,
    org: &str,
    body: &Map<String, Value>,
    cap: usize,
) -> Result<Vec<(String, String)>, ApiError> {
    let query = body
        .get("query")
        .ok_or_else(|| ApiError::field("query", "This field is required."))?;
    validate(query)?;
    let kind = object_type(query)
        .ok_or_else(|| ApiError::field("query", "The query must select an object_type."))?;
    let candidates: Vec<&Value> = match kind.as_str() {
        "lead" => store.leads.iter(org).collect(),
        "contact" => store
            .leads
            .iter(org)
            .flat_map(|l| l["contacts"].as_array().into_iter().flatten())
            .collect(),
        other => {
            let message = format!("Unsupported object_type {other:?}.");
            return Err(ApiError::field("query", &message));
        }
    };
    let mut matches: Vec<&Value> = candidates
        .into_iter()
        .filter(|obj| eval(query, obj, &kind))
        .collect();
    let sort = body.get("sort").and_then(Value::as_array);
    for clause in sort.into_iter().flatten().rev() {
        let descending = str_of(clause, "direction") == Some("desc");
        matches.sort_by(|a, b| {
            let key = |o: &Value| resolve(&clause["field"], o, &kind).map(|v| v.to_string());
            let order = key(a).cmp(&key(b));
            if descending { order.reverse() } else { order }
        });
    }
    Ok(matches
        .into_iter()
        .take(cap)
        .filter_map(|o| Some((kind.clone(), str_of(o, "id")?.to_owned())))
        .collect())
}

/// Rejects node, field and condition types the emulator does not know.
fn validate(node: &Value) -> Result<(), ApiError> {
    let bad =
        |what: &str, t: &str| Err(ApiError::field("query", &format!("Unknown {what} {t:?}.")));
    match str_of(node, "type").unwrap_or("") {
        "and" | "or" => {
            for q in node["queries"].as_array().into_iter().flatten() {
                validate(q)?;
            }
            Ok(())
        }
        "object_type" => Ok(()),
        "field_condition" => {
            let field = str_of(&node["field"], "type").unwrap_or("");
            if !["regular_field", "custom_field"].contains(&field) {
                return bad("field type", field);
            }
            let condition = str_of(&node["condition"], "type").unwrap_or("");
            if !["text", "term", "exists"].contains(&condition) {
                return bad("condition type", condition);
            }
            Ok(())
        }
        other => bad("query type", other),
    }
}

/// The first `object_type` node's type.
fn object_type(node: &Value) -> Option<String> {
    match str_of(node, "type")? {
        "object_type" => str_of(node, "object_type").map(str::to_owned),
        "and" | "or" => node["queries"].as_array()?.iter().find_map(object_type),
        _ => None,
    }
}

fn eval(node: &Value, obj: &Value, kind: &str) -> bool {
    let queries = || node["queries"].as_array().into_iter().flatten();
    let result = match str_of(node, "type").unwrap_or("") {
        "and" => queries().all(|q| eval(q, obj, kind)),
        "or" => queries().any(|q| eval(q, obj, kind)),
        "object_type" => str_of(node, "object_type") == Some(kind),
        "field_condition" => condition(&node["condition"], resolve(&node["field"], obj, kind)),
        _ => false,
    };
    result != node["negate"].as_bool().unwrap_or(false)
}

/// The value a field names on an object; `None` when absent or of another object type.
fn resolve<'a>(field: &Value, obj: &'a Value, kind: &str) -> Option<&'a Value> {
    match str_of(field, "type")? {
        "regular_field" => {
            let object_type = str_of(field, "object_type").unwrap_or(kind);
            if object_type != kind {
                return None;
            }
            obj.get(str_of(field, "field_name")?)
        }
        "custom_field" => {
            let id = str_of(field, "custom_field_id")?;
            let custom = obj.get("custom")?;
            custom
                .get(id)
                .or_else(|| custom.get(format!("cf_{id}").as_str()))
        }
        _ => None,
    }
}

fn condition(cond: &Value, value: Option<&Value>) -> bool {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(v) => vec![v],
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match str_of(cond, "type").unwrap_or("") {
        "text" => {
            let want = str_of(cond, "value").unwrap_or("").to_lowercase();
            items.iter().any(|v| text(v).to_lowercase().contains(&want))
        }
        "term" => {
            let values = cond["values"].as_array().into_iter().flatten();
            let wanted: Vec<String> = values.map(text).collect();
            items.iter().any(|v| wanted.contains(&text(v)))
        }
        "exists" => items.iter().any(|v| !text(v).is_empty()),
        _ => false,
    }
}

/// One result as the caller asked for it; `None` when it was deleted since the search began.
fn render(
    store: &Store,
    org: &str,
    kind: &str,
    id: &str,
    fields: Option<&Map<String, Value>>,
) -> Option<Value> {
    let obj = match kind {
        "lead" => store.leads.get(org, id)?,
        _ => store.contact(org, id)?,
    };
    let Some(list) = fields.and_then(|f| f.get(kind)).and_then(Value::as_array) else {
        return Some(json!({ "__object_type": kind, "id": id }));
    };
    let names: Vec<String> = list
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    Some(project(obj, Some(&names)))
}
