//! `/lead/`: list (with the `query` language's basics), create, get, update, delete, merge.
//!
//! `query` supports: bare words (all must occur, case-insensitively, in the display name or
//! a contact's name or email), `status:"Label"` / `lead_status:Label`, `id:lead_x`,
//! `sort:updated|created|name` (a leading `-` sorts descending), and any other `key:value`
//! as a substring of that attribute (e.g. `custom.cf_x:blue`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::activity;
use super::lead;
use super::reply::{ApiError, Ctx, Reply, empty, one, page_of};
use super::state::Shared;
use super::store::{Caller, Store, status_label, str_of};
use super::time::now_iso;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/lead/", get(list).post(create))
        .route("/api/v1/lead/merge/", post(merge))
        .route("/api/v1/lead/{id}/", get(fetch).put(update).delete(remove))
}

async fn list(State(s): State<Shared>, ctx: Ctx) -> Reply {
    let query = LeadQuery::parse(ctx.param("query").unwrap_or(""));
    let store = s.store();
    let mut rows: Vec<&Value> = store
        .leads
        .iter(&ctx.caller.org)
        .filter(|l| query.matches(l))
        .collect();
    if let Some((field, descending)) = &query.sort {
        rows.sort_by(|a, b| {
            let order = sort_key(a, field).cmp(&sort_key(b, field));
            if *descending { order.reverse() } else { order }
        });
    }
    page_of(rows.into_iter(), &ctx, 200)
}

async fn create(State(s): State<Shared>, ctx: Ctx) -> Reply {
    let body = ctx.object()?;
    let now = now_iso();
    let (lead, errors) = lead::build(body, &ctx.caller, &now, false);
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let mut store = s.store();
    insert_with_created(&mut store, lead.clone(), &ctx.caller, &now);
    Ok(Json(lead))
}

/// Stores a new lead and its `Created` activity.
pub(crate) fn insert_with_created(store: &mut Store, lead: Value, caller: &Caller, now: &str) {
    let id = str_of(&lead, "id").unwrap_or_default().to_owned();
    let mut created = activity::shell("Created", &id, caller, now);
    created.insert("source".into(), "api".into());
    store.leads.insert(&id, lead);
    store.add_activity(created);
}

async fn fetch(State(s): State<Shared>, Path(id): Path<String>, ctx: Ctx) -> Reply {
    let store = s.store();
    let lead = store
        .leads
        .get(&ctx.caller.org, &id)
        .ok_or_else(|| ApiError::missing("Lead"))?;
    one(lead, &ctx)
}

async fn update(State(s): State<Shared>, Path(id): Path<String>, ctx: Ctx) -> Reply {
    let body = ctx.object()?;
    let now = now_iso();
    let mut store = s.store();
    let lead = store
        .leads
        .get_mut(&ctx.caller.org, &id)
        .ok_or_else(|| ApiError::missing("Lead"))?;
    let changed = lead::patch(lead, body, &ctx.caller, &now).map_err(ApiError::Fields)?;
    let updated = Value::Object(lead.clone());
    if let Some((old, new)) = changed {
        let mut act = activity::shell("LeadStatusChange", &id, &ctx.caller, &now);
        act.insert("old_status_id".into(), old.clone().into());
        act.insert("old_status_label".into(), status_label(&old).into());
        act.insert("new_status_id".into(), new.clone().into());
        act.insert("new_status_label".into(), status_label(&new).into());
        store.add_activity(act);
    }
    Ok(Json(updated))
}

async fn remove(State(s): State<Shared>, Path(id): Path<String>, ctx: Ctx) -> Reply {
    let org = &ctx.caller.org;
    let mut store = s.store();
    store
        .leads
        .remove(org, &id)
        .ok_or_else(|| ApiError::missing("Lead"))?;
    let of_lead = |row: &Value| str_of(row, "lead_id") == Some(id.as_str());
    store.tasks.remove_where(org, of_lead);
    store.activities.remove_where(org, of_lead);
    empty()
}

/// Moves the source's contacts, tasks, activities, addresses and missing custom fields to
/// the destination, then deletes the source.
async fn merge(State(s): State<Shared>, ctx: Ctx) -> Reply {
    let body = ctx.object()?;
    let mut missing = Vec::new();
    for key in ["source", "destination"] {
        if body.get(key).and_then(Value::as_str).is_none() {
            missing.push((key.to_owned(), "This field is required.".to_owned()));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Fields(missing));
    }
    let field = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or_default();
    let source = field("source").to_owned();
    let destination = field("destination").to_owned();
    if source == destination {
        let message = "Source and destination leads must be different.".to_owned();
        return Err(ApiError::Errors(StatusCode::BAD_REQUEST, vec![message]));
    }
    let org = ctx.caller.org.clone();
    let now = now_iso();
    let mut store = s.store();
    let not_found = |what: &str| {
        ApiError::Errors(
            StatusCode::NOT_FOUND,
            vec![format!("{what} lead does not exist.")],
        )
    };
    if store.leads.get(&org, &destination).is_none() {
        return Err(not_found("Destination"));
    }
    let Some(src) = store.leads.remove(&org, &source) else {
        return Err(not_found("Source"));
    };
    let store = &mut *store;
    for table in [&mut store.tasks, &mut store.activities] {
        for row in table.iter_mut(&org) {
            if row.get("lead_id").and_then(Value::as_str) == Some(source.as_str()) {
                row.insert("lead_id".into(), destination.clone().into());
            }
        }
    }
    if let Some(dest) = store.leads.get_mut(&org, &destination) {
        absorb(dest, &src, &destination);
        dest.insert("date_updated".into(), now.clone().into());
        lead::refresh(dest);
    }
    let mut act = activity::shell("LeadMerge", &destination, &ctx.caller, &now);
    act.insert("source_lead_id".into(), source.into());
    act.insert("source_lead_name".into(), src["display_name"].clone());
    act.insert("destination_lead_id".into(), destination.into());
    store.add_activity(act);
    empty()
}

/// Adds the source lead's contacts, addresses and custom fields the destination lacks.
fn absorb(dest: &mut serde_json::Map<String, Value>, src: &Value, dest_id: &str) {
    for key in ["contacts", "addresses"] {
        let moved: Vec<Value> = src[key]
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .map(|mut item| {
                if let (true, Some(contact)) = (key == "contacts", item.as_object_mut()) {
                    contact.insert("lead_id".into(), dest_id.into());
                }
                item
            })
            .collect();
        if let Some(list) = dest.get_mut(key).and_then(Value::as_array_mut) {
            list.extend(moved);
        }
    }
    let src_custom = src["custom"].as_object().cloned().unwrap_or_default();
    if let Some(custom) = dest.get_mut("custom").and_then(Value::as_object_mut) {
        for (k, v) in src_custom {
            custom.entry(k).or_insert(v);
        }
    }
}

/// The parsed `query` parameter.
#[derive(Debug, Default)]
struct LeadQuery {
    words: Vec<String>,
    terms: Vec<(String, String)>,
    sort: Option<(String, bool)>,
}

impl LeadQuery {
    fn parse(text: &str) -> Self {
        let mut q = LeadQuery::default();
        for token in tokens(text) {
            let Some((key, value)) = token.split_once(':') else {
                q.words.push(token.to_lowercase());
                continue;
            };
            let value = value.trim_matches('"').to_owned();
            match key {
                "sort" => {
                    let (field, descending) = match value.strip_prefix('-') {
                        Some(f) => (f.to_owned(), true),
                        None => (value.clone(), false),
                    };
                    let field = match field.as_str() {
                        "updated" => "date_updated".to_owned(),
                        "created" => "date_created".to_owned(),
                        "name" => "display_name".to_owned(),
                        _ => field,
                    };
                    q.sort = Some((field, descending));
                }
                "status" | "lead_status" => q.terms.push(("status_label".into(), value)),
                _ => q.terms.push((key.to_owned(), value)),
            }
        }
        q
    }

    fn matches(&self, lead: &Value) -> bool {
        let haystack = searchable(lead);
        let words = self.words.iter().all(|w| haystack.contains(w.as_str()));
        let terms = self.terms.iter().all(|(key, value)| {
            let have = match lead.get(key) {
                Some(Value::String(s)) => s.to_lowercase(),
                Some(other) => other.to_string().to_lowercase(),
                None => return false,
            };
            let want = value.to_lowercase();
            match key.as_str() {
                "status_label" | "id" | "status_id" => have == want,
                _ => have.contains(&want),
            }
        });
        words && terms
    }
}

/// The lower-cased text bare words search: display name, contact names and emails.
fn searchable(lead: &Value) -> String {
    let mut text = str_of(lead, "display_name")
        .unwrap_or_default()
        .to_lowercase();
    for contact in lead["contacts"].as_array().into_iter().flatten() {
        text.push(' ');
        text.push_str(&str_of(contact, "name").unwrap_or_default().to_lowercase());
        for email in contact["emails"].as_array().into_iter().flatten() {
            text.push(' ');
            text.push_str(&str_of(email, "email").unwrap_or_default().to_lowercase());
        }
    }
    text
}

/// Splits on whitespace outside double quotes.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn sort_key(lead: &Value, field: &str) -> String {
    match lead.get(field) {
        Some(Value::String(s)) => s.to_lowercase(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_reads_words_status_and_sort() {
        let q = LeadQuery::parse(r#"acme status:"Bad Fit" sort:-updated"#);
        assert_eq!(q.words, vec!["acme"]);
        assert_eq!(q.terms, vec![("status_label".into(), "Bad Fit".into())]);
        assert_eq!(q.sort, Some(("date_updated".into(), true)));
        let lead = json!({"display_name": "ACME Corp", "status_label": "Bad Fit"});
        assert!(q.matches(&lead));
        let other = json!({"display_name": "ACME Corp", "status_label": "Potential"});
        assert!(!q.matches(&other));
    }
}
