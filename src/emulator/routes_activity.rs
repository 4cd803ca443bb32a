//! `/activity/` (every type) and `/activity/<type>/` (one type): list, create, get, update,
//! delete. An id of another type than the path's answers 404.
//!
//! `_type` / `_type__in` filters take `_type` names (`Note`, `Email`, ...,
//! `Custom.actitype_x` for one custom activity type) and, as in Close, only with a single
//! `lead_id`; otherwise 400 `{"errors": ["The _type filters require a single lead_id."]}`.
//! Lists are newest first unless `_order_by` says otherwise.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::Value;

use super::activity::{self, Kind, by_path};
use super::reply::{ApiError, Ctx, Reply, empty, one, page_of, within};
use super::state::Shared;
use super::store::str_of;
use super::time::{now_iso, parse_micros};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/activity/", get(list_all))
        .route("/api/v1/activity/{a}/", any(one_segment))
        .route("/api/v1/activity/{a}/{b}/", any(two_segments))
        .route("/api/v1/activity/{a}/{b}/{c}/", any(three_segments))
}

async fn list_all(State(s): State<Shared>, ctx: Ctx) -> Reply {
    list(&s, &ctx, None)
}

async fn one_segment(
    State(s): State<Shared>,
    Path(a): Path<String>,
    method: Method,
    ctx: Ctx,
) -> Reply {
    let kind = by_path(&a).ok_or_else(ApiError::no_route)?;
    collection(&s, kind, &method, &ctx)
}

/// `/activity/status_change/lead/` is a collection; `/activity/note/acti_x/` an item.
async fn two_segments(
    State(s): State<Shared>,
    Path((a, b)): Path<(String, String)>,
    method: Method,
    ctx: Ctx,
) -> Reply {
    if let Some(kind) = by_path(&format!("{a}/{b}")) {
        return collection(&s, kind, &method, &ctx);
    }
    let kind = by_path(&a).ok_or_else(ApiError::no_route)?;
    item(&s, kind, &b, &method, &ctx)
}

async fn three_segments(
    State(s): State<Shared>,
    Path((a, b, c)): Path<(String, String, String)>,
    method: Method,
    ctx: Ctx,
) -> Reply {
    let kind = by_path(&format!("{a}/{b}")).ok_or_else(ApiError::no_route)?;
    item(&s, kind, &c, &method, &ctx)
}

fn collection(s: &Shared, kind: &Kind, method: &Method, ctx: &Ctx) -> Reply {
    match *method {
        Method::GET => list(s, ctx, Some(kind)),
        Method::POST if kind.creatable => create(s, kind, ctx),
        _ => Err(ApiError::method()),
    }
}

fn item(s: &Shared, kind: &Kind, id: &str, method: &Method, ctx: &Ctx) -> Reply {
    let org = &ctx.caller.org;
    let mut store = s.store();
    let found = store
        .activities
        .get(org, id)
        .is_some_and(|a| str_of(a, "_type") == Some(kind.type_name));
    if !found {
        return Err(ApiError::missing(kind.type_name));
    }
    match *method {
        Method::GET => match store.activities.get(org, id) {
            Some(act) => one(act, ctx),
            None => Err(ApiError::missing(kind.type_name)),
        },
        Method::PUT => {
            let body = ctx.object()?;
            let Some(act) = store.activities.get_mut(org, id) else {
                return Err(ApiError::missing(kind.type_name));
            };
            activity::patch(act, body, &ctx.caller, &now_iso()).map_err(ApiError::Fields)?;
            Ok(Json(Value::Object(act.clone())))
        }
        Method::DELETE => {
            store.activities.remove(org, id);
            empty()
        }
        _ => Err(ApiError::method()),
    }
}

fn create(s: &Shared, kind: &Kind, ctx: &Ctx) -> Reply {
    let body = ctx.object()?;
    let lead_id = body.get("lead_id").and_then(Value::as_str).unwrap_or("");
    let mut store = s.store();
    if lead_id.is_empty() {
        return Err(ApiError::field("lead", "This field is required."));
    }
    if store.leads.get(&ctx.caller.org, lead_id).is_none() {
        return Err(ApiError::field("lead", "Object does not exist."));
    }
    let act =
        activity::build(kind, body, lead_id, &ctx.caller, &now_iso()).map_err(ApiError::Fields)?;
    let Value::Object(map) = act.clone() else {
        return Err(ApiError::method());
    };
    store.add_activity(map);
    Ok(Json(act))
}

fn list(s: &Shared, ctx: &Ctx, kind: Option<&Kind>) -> Reply {
    let split = |name: &str| -> Option<Vec<String>> {
        let value = ctx.param(name)?;
        Some(value.split(',').map(str::to_owned).collect())
    };
    let leads = split("lead_id").or_else(|| split("lead_id__in"));
    let types = split("_type").or_else(|| split("_type__in"));
    if types.is_some() && leads.as_ref().is_none_or(|l| l.len() != 1) {
        let message = "The _type filters require a single lead_id.".to_owned();
        return Err(ApiError::Errors(StatusCode::BAD_REQUEST, vec![message]));
    }
    let ids = split("id__in");
    let contacts = split("contact_id").or_else(|| split("contact_id__in"));
    let users = split("user_id").or_else(|| split("user_id__in"));
    let created = ctx.bounds("date_created")?;
    let happened = ctx.bounds("activity_at")?;
    let has = |list: &Option<Vec<String>>, act: &Value, key: &str| {
        list.as_ref()
            .is_none_or(|l| l.iter().any(|v| str_of(act, key) == Some(v.as_str())))
    };
    let time_of = |act: &Value, key: &str| str_of(act, key).and_then(parse_micros);
    let store = s.store();
    let mut rows: Vec<&Value> = store
        .activities
        .iter(&ctx.caller.org)
        .rev()
        .filter(|act| {
            kind.is_none_or(|k| str_of(act, "_type") == Some(k.type_name))
                && types
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| is_type(act, t)))
                && has(&leads, act, "lead_id")
                && has(&ids, act, "id")
                && has(&contacts, act, "contact_id")
                && has(&users, act, "user_id")
                && within(&created, time_of(act, "date_created"))
                && within(&happened, time_of(act, "activity_at"))
        })
        .collect();
    if let Some(order) = ctx.param("_order_by") {
        let (field, descending) = match order.strip_prefix('-') {
            Some(f) => (f, true),
            None => (order, false),
        };
        if !["date_created", "activity_at"].contains(&field) {
            return Err(ApiError::field("_order_by", "Unsupported ordering."));
        }
        rows.sort_by(|a, b| {
            let order = time_of(a, field).cmp(&time_of(b, field));
            if descending { order.reverse() } else { order }
        });
    }
    page_of(rows.into_iter(), ctx, 100)
}

/// `_type` filter value `Note`, `Custom` for every custom activity, or `Custom.actitype_x`
/// for one custom activity type.
fn is_type(act: &Value, wanted: &str) -> bool {
    if wanted == "Custom" {
        return str_of(act, "_type") == Some("CustomActivity");
    }
    match wanted.strip_prefix("Custom.") {
        Some(type_id) => {
            str_of(act, "_type") == Some("CustomActivity")
                && str_of(act, "custom_activity_type_id") == Some(type_id)
        }
        None => str_of(act, "_type") == Some(wanted),
    }
}
