//! `/task/`: list with Close's filters and views, create (`lead` and `outgoing_call` only),
//! get, update (completing a task logs a `TaskCompleted` activity), delete.
//!
//! Views compare the task's `date` with the end of the current UTC day: `inbox` is
//! incomplete and due by then (or dateless), `future` incomplete and due later, `archive`
//! complete.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::activity;
use super::lead::FieldErrors;
use super::reply::{ApiError, Ctx, Reply, empty, one, page_of, within};
use super::state::Shared;
use super::store::{Caller, Store, at, new_id, str_of};
use super::time::{end_of_today_micros, now_iso, parse_micros};

const READ_ONLY: &[&str] = &[
    "id",
    "_type",
    "lead_id",
    "lead_name",
    "organization_id",
    "date_created",
    "date_updated",
    "created_by",
    "updated_by",
    "object_type",
    "object_id",
];

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/task/", get(list).post(create))
        .route("/api/v1/task/{id}/", get(fetch).put(update).delete(remove))
}

async fn list(State(s): State<Shared>, ctx: Ctx) -> Reply {
    let end_of_today = end_of_today_micros();
    let view = ctx.param("view");
    if view.is_some_and(|v| !["inbox", "future", "archive"].contains(&v)) {
        return Err(ApiError::field(
            "view",
            "Must be one of: inbox, future, archive.",
        ));
    }
    let ids: Option<Vec<&str>> = ctx.param("id__in").map(|v| v.split(',').collect());
    let bounds = ctx.bounds("date")?;
    let store = s.store();
    let mut rows: Vec<&Value> = store
        .tasks
        .iter(&ctx.caller.org)
        .filter(|t| {
            let complete = t["is_complete"].as_bool().unwrap_or(false);
            let date = str_of(t, "date").and_then(parse_micros);
            let in_view = match view {
                Some("inbox") => !complete && date.is_none_or(|d| d <= end_of_today),
                Some("future") => !complete && date.is_some_and(|d| d > end_of_today),
                Some("archive") => complete,
                _ => true,
            };
            in_view
                && within(&bounds, date)
                && equals(&ctx, t, "lead_id")
                && equals(&ctx, t, "assigned_to")
                && equals(&ctx, t, "_type")
                && equals(&ctx, t, "id")
                && ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&str_of(t, "id").unwrap_or("")))
                && ctx
                    .param("is_complete")
                    .is_none_or(|want| ["true", "1"].contains(&want) == complete)
        })
        .collect();
    if let Some(order) = ctx.param("_order_by") {
        let (field, descending) = match order.strip_prefix('-') {
            Some(f) => (f, true),
            None => (order, false),
        };
        if !["date", "date_created", "due_date"].contains(&field) {
            return Err(ApiError::field("_order_by", "Unsupported ordering."));
        }
        rows.sort_by(|a, b| {
            let key = |t: &Value| str_of(t, field).and_then(parse_micros);
            let order = key(a).cmp(&key(b));
            if descending { order.reverse() } else { order }
        });
    }
    page_of(rows.into_iter(), &ctx, 200)
}

/// True when the query parameter `key` is absent or equals the task's attribute.
fn equals(ctx: &Ctx, task: &Value, key: &str) -> bool {
    ctx.param(key)
        .is_none_or(|want| str_of(task, key) == Some(want))
}

async fn create(State(s): State<Shared>, ctx: Ctx) -> Reply {
    let body = ctx.object()?;
    let mut store = s.store();
    let task = build(&store, body, &ctx.caller, &now_iso(), false).map_err(ApiError::Fields)?;
    let id = str_of(&task, "id").unwrap_or_default().to_owned();
    store.tasks.insert(&id, task.clone());
    Ok(Json(task))
}

/// A new task. Fixtures (`keep_ids`) may choose its id and skip the lead check.
pub(crate) fn build(
    store: &Store,
    body: &Map<String, Value>,
    caller: &Caller,
    now: &str,
    keep_ids: bool,
) -> Result<Value, FieldErrors> {
    let mut errors = FieldErrors::new();
    let kind = body.get("_type").and_then(Value::as_str).unwrap_or("lead");
    if !["lead", "outgoing_call"].contains(&kind) {
        let message = "Only lead and outgoing_call tasks can be created.".into();
        errors.push(("_type".into(), message));
    }
    let lead_id = body.get("lead_id").and_then(Value::as_str).unwrap_or("");
    let lead = store.leads.get(&caller.org, lead_id);
    if lead_id.is_empty() {
        errors.push(("lead".into(), "This field is required.".into()));
    } else if lead.is_none() && !keep_ids {
        errors.push(("lead".into(), "Object does not exist.".into()));
    }
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    if kind == "lead" && text.is_empty() {
        errors.push(("text".into(), "This field is required.".into()));
    }
    errors.extend(check_dates(body));
    if !errors.is_empty() && !keep_ids {
        return Err(errors);
    }
    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) if keep_ids => id.to_owned(),
        _ => new_id("task_"),
    };
    let date = body.get("date").cloned().unwrap_or(Value::Null);
    let mut task = json!({
        "id": id,
        "_type": kind,
        "lead_id": lead_id,
        "lead_name": lead.and_then(|l| l.get("display_name")).cloned().unwrap_or(Value::Null),
        "contact_id": null,
        "contact_name": null,
        "text": text,
        "date": date,
        "due_date": date,
        "is_dateless": date.is_null(),
        "is_complete": false,
        "assigned_to": caller.user,
        "assigned_to_name": "Emulator User",
        "created_by": caller.user,
        "created_by_name": "Emulator User",
        "updated_by": caller.user,
        "updated_by_name": "Emulator User",
        "date_created": now,
        "date_updated": now,
        "organization_id": caller.org,
        "object_type": null,
        "object_id": null,
    });
    if let Some(map) = task.as_object_mut() {
        for (key, value) in body {
            if !READ_ONLY.contains(&key.as_str()) {
                map.insert(key.clone(), value.clone());
            }
        }
        let is_dateless = at(map, "date").is_null();
        map.insert("is_dateless".into(), is_dateless.into());
    }
    Ok(task)
}

/// `date` and `due_date` must be dates or date-times.
fn check_dates(body: &Map<String, Value>) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for key in ["date", "due_date"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if parse_micros(s).is_some() => {}
            Some(_) => errors.push((key.into(), "Not a valid date or datetime.".into())),
        }
    }
    if body.get("is_complete").is_some_and(|v| !v.is_boolean()) {
        errors.push(("is_complete".into(), "Must be a boolean.".into()));
    }
    errors
}

async fn fetch(State(s): State<Shared>, Path(id): Path<String>, ctx: Ctx) -> Reply {
    let store = s.store();
    let task = store
        .tasks
        .get(&ctx.caller.org, &id)
        .ok_or_else(|| ApiError::missing("Task"))?;
    one(task, &ctx)
}

async fn update(State(s): State<Shared>, Path(id): Path<String>, ctx: Ctx) -> Reply {
    let body = ctx.object()?;
    let errors = check_dates(body);
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let now = now_iso();
    let mut store = s.store();
    let task = store
        .tasks
        .get_mut(&ctx.caller.org, &id)
        .ok_or_else(|| ApiError::missing("Task"))?;
    let was_complete = at(task, "is_complete").as_bool().unwrap_or(false);
    for (key, value) in body {
        if !READ_ONLY.contains(&key.as_str()) {
            task.insert(key.clone(), value.clone());
        }
    }
    let is_dateless = at(task, "date").is_null();
    task.insert("is_dateless".into(), is_dateless.into());
    task.insert("date_updated".into(), now.clone().into());
    task.insert("updated_by".into(), ctx.caller.user.clone().into());
    let is_complete = at(task, "is_complete").as_bool().unwrap_or(false);
    if was_complete && !is_complete {
        task.insert("object_type".into(), Value::Null);
        task.insert("object_id".into(), Value::Null);
    }
    if was_complete || !is_complete {
        return Ok(Json(Value::Object(task.clone())));
    }
    let lead_id = str_of_map(task, "lead_id");
    let mut act = activity::shell("TaskCompleted", &lead_id, &ctx.caller, &now);
    act.insert("task_id".into(), id.clone().into());
    act.insert("task_text".into(), at(task, "text").clone());
    act.insert("task_assigned_to".into(), at(task, "assigned_to").clone());
    let act_id = str_of_map(&act, "id");
    task.insert("object_type".into(), "taskcompleted".into());
    task.insert("object_id".into(), act_id.into());
    let done = Value::Object(task.clone());
    store.add_activity(act);
    Ok(Json(done))
}

fn str_of_map(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

async fn remove(State(s): State<Shared>, Path(id): Path<String>, ctx: Ctx) -> Reply {
    let mut store = s.store();
    store
        .tasks
        .remove(&ctx.caller.org, &id)
        .ok_or_else(|| ApiError::missing("Task"))?;
    empty()
}
