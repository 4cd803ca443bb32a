//! Small read-only endpoints a client or a developer touches first: `/me/` and the lead
//! statuses (`/status/lead/`), so that `status_id`s can be looked up.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::reply::{Ctx, Reply, page_of};
use super::state::Shared;
use super::store::LEAD_STATUSES;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/me/", get(me))
        .route("/api/v1/status/lead/", get(statuses))
}

async fn me(State(_s): State<Shared>, ctx: Ctx) -> Reply {
    Ok(axum::Json(json!({
        "id": ctx.caller.user,
        "first_name": "Emulator",
        "last_name": "User",
        "email": "emulator@example.com",
        "organizations": [{"id": ctx.caller.org, "name": "Emulated Organization"}],
        "memberships": [{"organization_id": ctx.caller.org, "user_id": ctx.caller.user}],
    })))
}

async fn statuses(State(_s): State<Shared>, ctx: Ctx) -> Reply {
    let rows: Vec<Value> = LEAD_STATUSES
        .iter()
        .map(|(id, label)| json!({"id": id, "label": label, "organization_id": ctx.caller.org}))
        .collect();
    page_of(rows.iter(), &ctx, 200)
}
