//! Activity types, and how each is built from a create body and checked on update.
//!
//! Every activity is `acti_...` with a `_type`; the per-type paths (`/activity/note/`...)
//! only see their own type. Email and SMS `status`, call and email `direction` are checked
//! against Close's enumerations on create and update.

use serde_json::{Map, Value, json};

use super::lead::FieldErrors;
use super::store::{Caller, new_id};

/// One activity type: its path below `/activity/`, its `_type`, and whether the API
/// creates it.
#[derive(Debug)]
pub(crate) struct Kind {
    pub path: &'static str,
    pub type_name: &'static str,
    pub creatable: bool,
}

pub(crate) const KINDS: &[Kind] = &[
    kind("note", "Note", true),
    kind("call", "Call", true),
    kind("email", "Email", true),
    kind("emailthread", "EmailThread", false),
    kind("sms", "SMS", true),
    kind("meeting", "Meeting", false),
    kind("custom", "CustomActivity", true),
    kind("created", "Created", false),
    kind("task_completed", "TaskCompleted", false),
    kind("status_change/lead", "LeadStatusChange", false),
    kind(
        "status_change/opportunity",
        "OpportunityStatusChange",
        false,
    ),
    kind("lead_merge", "LeadMerge", false),
    kind("whatsapp_message", "WhatsAppMessage", false),
    kind("form_submission", "FormSubmission", false),
];

const fn kind(path: &'static str, type_name: &'static str, creatable: bool) -> Kind {
    Kind {
        path,
        type_name,
        creatable,
    }
}

/// The type served at `/activity/<path>/`.
pub(crate) fn by_path(path: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.path == path)
}

const MESSAGE_STATUSES: &[&str] = &["inbox", "draft", "scheduled", "outbox", "sent", "error"];
const CALL_STATUSES: &[&str] = &[
    "created",
    "in-progress",
    "completed",
    "cancel",
    "no-answer",
    "busy",
    "failed",
    "timeout",
];
const PHONE_DIRECTIONS: &[&str] = &["inbound", "outbound"];
const EMAIL_DIRECTIONS: &[&str] = &["incoming", "outgoing"];

/// Attributes only Close sets.
const READ_ONLY: &[&str] = &[
    "id",
    "_type",
    "organization_id",
    "date_created",
    "date_updated",
    "created_by",
    "updated_by",
];

/// The attributes every activity has.
pub(crate) fn shell(
    type_name: &str,
    lead_id: &str,
    caller: &Caller,
    now: &str,
) -> Map<String, Value> {
    let shell = json!({
        "id": new_id("acti_"),
        "_type": type_name,
        "lead_id": lead_id,
        "contact_id": null,
        "user_id": caller.user,
        "user_name": "Emulator User",
        "created_by": caller.user,
        "created_by_name": "Emulator User",
        "updated_by": caller.user,
        "updated_by_name": "Emulator User",
        "date_created": now,
        "date_updated": now,
        "activity_at": now,
        "organization_id": caller.org,
        "users": [],
    });
    match shell {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A new activity of `kind` from a create body whose `lead_id` was already checked.
pub(crate) fn build(
    kind: &Kind,
    body: &Map<String, Value>,
    lead_id: &str,
    caller: &Caller,
    now: &str,
) -> Result<Value, FieldErrors> {
    let mut act = shell(kind.type_name, lead_id, caller, now);
    let mut errors = FieldErrors::new();
    let defaults = match kind.type_name {
        "Note" => {
            if text(body, "note").is_none() && text(body, "note_html").is_none() {
                errors.push(("note".into(), "This field is required.".into()));
            }
            json!({"note": "", "note_html": ""})
        }
        "Call" => json!({
            "direction": "outbound", "status": "completed", "duration": 0, "phone": null,
            "note": "", "disposition": null, "recording_url": null, "voicemail_url": null,
        }),
        "Email" => {
            let status = body.get("status").and_then(Value::as_str).unwrap_or("");
            if status.is_empty() {
                errors.push(("status".into(), "This field is required.".into()));
            }
            let needs_sender = ["inbox", "scheduled", "outbox", "error"].contains(&status);
            if needs_sender && text(body, "sender").is_none() {
                errors.push(("sender".into(), "This field is required.".into()));
            }
            let direction = if status == "inbox" {
                "incoming"
            } else {
                "outgoing"
            };
            json!({
                "direction": direction, "subject": "", "body_text": "", "body_html": "",
                "sender": null, "to": [], "cc": [], "bcc": [], "attachments": [],
                "thread_id": null, "template_id": null, "opens": [],
            })
        }
        "SMS" => {
            let status = body.get("status").and_then(Value::as_str).unwrap_or("");
            if status.is_empty() {
                errors.push(("status".into(), "This field is required.".into()));
            }
            let direction = if status == "inbox" {
                "inbound"
            } else {
                "outbound"
            };
            json!({
                "direction": direction, "text": "", "local_phone": null,
                "remote_phone": null, "attachments": [],
            })
        }
        "CustomActivity" => {
            if text(body, "custom_activity_type_id").is_none() {
                let message = "This field is required.".into();
                errors.push(("custom_activity_type_id".into(), message));
            }
            json!({"status": "published"})
        }
        _ => json!({}),
    };
    if let Value::Object(defaults) = defaults {
        act.extend(defaults);
    }
    errors.extend(check(kind.type_name, body));
    if !errors.is_empty() {
        return Err(errors);
    }
    for (key, value) in body {
        if READ_ONLY.contains(&key.as_str()) || key == "lead_id" {
            continue;
        }
        act.insert(key.clone(), value.clone());
    }
    if kind.type_name == "Note" {
        fill_note(&mut act);
    }
    Ok(Value::Object(act))
}

/// Applies an update body to a stored activity.
pub(crate) fn patch(
    act: &mut Map<String, Value>,
    body: &Map<String, Value>,
    caller: &Caller,
    now: &str,
) -> Result<(), FieldErrors> {
    let type_name = act
        .get("_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let errors = check(&type_name, body);
    if !errors.is_empty() {
        return Err(errors);
    }
    for (key, value) in body {
        if READ_ONLY.contains(&key.as_str()) {
            continue;
        }
        act.insert(key.clone(), value.clone());
    }
    act.insert("date_updated".into(), now.into());
    act.insert("updated_by".into(), caller.user.clone().into());
    Ok(())
}

/// Enumerated attributes of a body, for its type.
fn check(type_name: &str, body: &Map<String, Value>) -> FieldErrors {
    let (statuses, directions): (&[&str], &[&str]) = match type_name {
        "Email" => (MESSAGE_STATUSES, EMAIL_DIRECTIONS),
        "SMS" => (MESSAGE_STATUSES, PHONE_DIRECTIONS),
        "Call" => (CALL_STATUSES, PHONE_DIRECTIONS),
        _ => return FieldErrors::new(),
    };
    let mut errors = FieldErrors::new();
    for (key, allowed) in [("status", statuses), ("direction", directions)] {
        let Some(value) = body.get(key) else {
            continue;
        };
        if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
            let message = format!("Must be one of: {}.", allowed.join(", "));
            errors.push((key.to_owned(), message));
        }
    }
    if type_name == "Call" {
        let duration = body.get("duration");
        if duration.is_some_and(|d| !d.is_null() && d.as_u64().is_none()) {
            errors.push(("duration".into(), "A valid integer is required.".into()));
        }
    }
    errors
}

/// A non-empty string attribute.
fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Close keeps a note both as text and HTML; fill the one not given.
fn fill_note(act: &mut Map<String, Value>) {
    let note = text(act, "note").map(str::to_owned);
    let html = text(act, "note_html").map(str::to_owned);
    match (note, html) {
        (Some(note), None) => {
            act.insert(
                "note_html".into(),
                format!("<p>{}</p>", escape(&note)).into(),
            );
        }
        (None, Some(html)) => {
            act.insert("note".into(), strip_tags(&html).into());
        }
        _ => {}
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}
