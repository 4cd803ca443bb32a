//! How a lead's JSON is built from a create body, patched by an update body, and kept
//! consistent (flat `custom.cf_*` keys, status label, display name, primary email and phone).
//!
//! Attributes the emulator does not know are stored and returned as given, so that clients
//! that must preserve unknown attributes can be tested.

use serde_json::{Map, Value, json};

use super::store::{Caller, LEAD_STATUSES, new_id, status_id, status_label};

/// Attributes only Close sets; clients' values are ignored.
const READ_ONLY: &[&str] = &[
    "id",
    "organization_id",
    "date_created",
    "date_updated",
    "display_name",
    "html_url",
    "created_by",
    "updated_by",
    "created_by_name",
    "updated_by_name",
    "primary_email",
    "primary_phone",
    "opportunities",
    "tasks",
    "integration_links",
];

/// Field errors collected while reading a body: `(field, message)`.
pub(crate) type FieldErrors = Vec<(String, String)>;

/// A new lead from a create body. Field errors come back beside the lead: the API refuses
/// such a body, test fixtures ignore them. Fixtures (`keep_ids`) may choose the lead's and
/// contacts' ids; the API always makes new ones.
pub(crate) fn build(
    body: &Map<String, Value>,
    caller: &Caller,
    now: &str,
    keep_ids: bool,
) -> (Value, FieldErrors) {
    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) if keep_ids => id.to_owned(),
        _ => new_id("lead_"),
    };
    let (status, label) = LEAD_STATUSES[0];
    let mut lead = json!({
        "id": id,
        "name": null,
        "display_name": "",
        "status_id": status,
        "status_label": label,
        "description": "",
        "url": null,
        "contacts": [],
        "addresses": [],
        "custom": {},
        "date_created": now,
        "date_updated": now,
        "created_by": caller.user,
        "updated_by": caller.user,
        "created_by_name": "Emulator User",
        "updated_by_name": "Emulator User",
        "organization_id": caller.org,
        "html_url": format!("https://app.close.com/lead/{id}/"),
        "source": null,
        "opportunities": [],
        "tasks": [],
        "integration_links": [],
        "primary_email": null,
        "primary_phone": null,
    });
    let mut errors = FieldErrors::new();
    let Some(map) = lead.as_object_mut() else {
        return (lead, errors);
    };
    for (key, value) in body {
        if key == "contacts" {
            let list = contacts(value, &id, caller, now, keep_ids, &mut errors);
            map.insert(key.clone(), list);
            continue;
        }
        apply(map, key, value, &mut errors);
    }
    refresh(map);
    (lead, errors)
}

/// Applies an update body. Returns the old and new status ids when the status changed.
pub(crate) fn patch(
    lead: &mut Map<String, Value>,
    body: &Map<String, Value>,
    caller: &Caller,
    now: &str,
) -> Result<Option<(String, String)>, FieldErrors> {
    let old_status = lead.get("status_id").cloned();
    let mut staged = lead.clone();
    let mut errors = FieldErrors::new();
    for (key, value) in body {
        // Close does not update contacts through the lead.
        if key == "contacts" {
            continue;
        }
        apply(&mut staged, key, value, &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    staged.insert("date_updated".into(), now.into());
    staged.insert("updated_by".into(), caller.user.clone().into());
    refresh(&mut staged);
    let new_status = staged.get("status_id").cloned();
    *lead = staged;
    match (old_status, new_status) {
        (Some(Value::String(old)), Some(Value::String(new))) if old != new => Ok(Some((old, new))),
        _ => Ok(None),
    }
}

/// Sets one attribute of a create or update body.
fn apply(lead: &mut Map<String, Value>, key: &str, value: &Value, errors: &mut FieldErrors) {
    if READ_ONLY.contains(&key) {
        return;
    }
    if let Some(field) = key.strip_prefix("custom.") {
        set_custom(lead, field, value);
        return;
    }
    match key {
        "custom" => match value {
            Value::Object(fields) => {
                for (field, v) in fields {
                    set_custom(lead, field, v);
                }
            }
            Value::Null => {
                lead.insert("custom".into(), json!({}));
            }
            _ => errors.push(("custom".into(), "Not a valid mapping.".into())),
        },
        "status_id" => match value.as_str().and_then(status_label) {
            Some(label) => {
                lead.insert("status_id".into(), value.clone());
                lead.insert("status_label".into(), label.into());
            }
            None => errors.push(("status_id".into(), "Object does not exist.".into())),
        },
        "status" | "status_label" => match value.as_str().and_then(status_id) {
            Some(id) => {
                lead.insert("status_id".into(), id.into());
            }
            None => errors.push((key.into(), "Object does not exist.".into())),
        },
        "name" | "description" | "url" => match value {
            Value::String(_) | Value::Null => {
                lead.insert(key.into(), value.clone());
            }
            _ => errors.push((key.into(), "Not a valid string.".into())),
        },
        "addresses" => match addresses(value) {
            Some(list) => {
                lead.insert(key.into(), list);
            }
            None => errors.push((key.into(), "Not a valid list of addresses.".into())),
        },
        _ => {
            if value.is_null() {
                lead.remove(key);
            } else {
                lead.insert(key.into(), value.clone());
            }
        }
    }
}

/// `custom.<field>` (set, `null` unsets), `custom.<field>.add`, `custom.<field>.remove`.
fn set_custom(lead: &mut Map<String, Value>, field: &str, value: &Value) {
    let custom = lead
        .entry("custom")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(custom) = custom else {
        return;
    };
    if let Some(field) = field.strip_suffix(".add") {
        let list = match custom.remove(field) {
            Some(Value::Array(list)) => list,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![other],
        };
        let mut list = list;
        list.push(value.clone());
        custom.insert(field.to_owned(), Value::Array(list));
        return;
    }
    if let Some(field) = field.strip_suffix(".remove") {
        match custom.get_mut(field) {
            Some(Value::Array(list)) => list.retain(|v| v != value),
            Some(v) if v == value => {
                custom.remove(field);
            }
            _ => {}
        }
        return;
    }
    if value.is_null() {
        custom.remove(field);
    } else {
        custom.insert(field.to_owned(), value.clone());
    }
}

/// Recomputes everything derived from other attributes.
pub(crate) fn refresh(lead: &mut Map<String, Value>) {
    lead.retain(|k, _| !k.starts_with("custom."));
    let flat: Vec<(String, Value)> = match lead.get("custom").and_then(Value::as_object) {
        Some(custom) => custom
            .iter()
            .map(|(k, v)| (format!("custom.{k}"), v.clone()))
            .collect(),
        None => Vec::new(),
    };
    lead.extend(flat);
    if let Some(label) = lead
        .get("status_id")
        .and_then(Value::as_str)
        .and_then(status_label)
    {
        lead.insert("status_label".into(), label.into());
    }
    let contacts = lead.get("contacts").and_then(Value::as_array);
    let first_of = |list: &str| -> Value {
        contacts
            .into_iter()
            .flatten()
            .filter_map(|c| c.get(list)?.as_array()?.first())
            .next()
            .cloned()
            .unwrap_or(Value::Null)
    };
    let primary_email = first_of("emails");
    let primary_phone = first_of("phones");
    let display = match lead.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => contacts
            .into_iter()
            .flatten()
            .find_map(|c| c.get("display_name")?.as_str())
            .unwrap_or("")
            .to_owned(),
    };
    lead.insert("primary_email".into(), primary_email);
    lead.insert("primary_phone".into(), primary_phone);
    lead.insert("display_name".into(), display.into());
}

/// Contacts of a create body, with ids and Close's attributes.
fn contacts(
    value: &Value,
    lead_id: &str,
    caller: &Caller,
    now: &str,
    keep_ids: bool,
    errors: &mut FieldErrors,
) -> Value {
    let Value::Array(list) = value else {
        errors.push(("contacts".into(), "Not a valid list.".into()));
        return json!([]);
    };
    let mut out = Vec::new();
    for item in list {
        let Value::Object(given) = item else {
            errors.push(("contacts".into(), "Not a valid contact.".into()));
            continue;
        };
        match contact(given, lead_id, caller, now, keep_ids) {
            Some(c) => out.push(c),
            None => errors.push(("contacts".into(), "Not a valid contact.".into())),
        }
    }
    Value::Array(out)
}

/// One contact; `None` when an email or phone entry is malformed.
pub(crate) fn contact(
    given: &Map<String, Value>,
    lead_id: &str,
    caller: &Caller,
    now: &str,
    keep_ids: bool,
) -> Option<Value> {
    let mut c = given.clone();
    let id = match given.get("id").and_then(Value::as_str) {
        Some(id) if keep_ids => id.to_owned(),
        _ => new_id("cont_"),
    };
    let emails = entries(given.get("emails"), "email")?;
    let phones = entries(given.get("phones"), "phone")?;
    let emails: Vec<Value> = emails
        .into_iter()
        .map(|mut e| {
            e.entry("type").or_insert_with(|| "office".into());
            e.entry("is_unsubscribed").or_insert(Value::Bool(false));
            Value::Object(e)
        })
        .collect();
    let phones: Vec<Value> = phones
        .into_iter()
        .map(|mut p| {
            let number = p.get("phone").cloned().unwrap_or(Value::Null);
            p.entry("type").or_insert_with(|| "office".into());
            p.entry("phone_formatted").or_insert(number);
            p.entry("country").or_insert(Value::Null);
            Value::Object(p)
        })
        .collect();
    let name = given.get("name").cloned().unwrap_or(Value::Null);
    let display = match name.as_str() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => emails
            .first()
            .and_then(|e| e.get("email")?.as_str())
            .unwrap_or("")
            .to_owned(),
    };
    let fixed = json!({
        "id": id,
        "lead_id": lead_id,
        "organization_id": caller.org,
        "name": name,
        "title": given.get("title").cloned().unwrap_or(Value::Null),
        "display_name": display,
        "emails": emails,
        "phones": phones,
        "urls": given.get("urls").cloned().unwrap_or_else(|| json!([])),
        "date_created": now,
        "date_updated": now,
        "created_by": caller.user,
        "updated_by": caller.user,
        "integration_links": [],
    });
    if let Value::Object(fixed) = fixed {
        c.extend(fixed);
    }
    Some(Value::Object(c))
}

/// A list of objects each with a string `key` (`emails`, `phones`); absent is empty.
fn entries(value: Option<&Value>, key: &str) -> Option<Vec<Map<String, Value>>> {
    let list = match value {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return None,
    };
    let mut out = Vec::new();
    for item in list {
        let map = item.as_object()?;
        map.get(key)?.as_str()?;
        out.push(map.clone());
    }
    Some(out)
}

/// Addresses with every attribute Close returns.
fn addresses(value: &Value) -> Option<Value> {
    let list = match value {
        Value::Null => return Some(json!([])),
        Value::Array(list) => list,
        _ => return None,
    };
    let mut out = Vec::new();
    for item in list {
        let mut address = item.as_object()?.clone();
        for key in [
            "label",
            "address_1",
            "address_2",
            "city",
            "state",
            "zipcode",
            "country",
        ] {
            address.entry(key).or_insert(Value::Null);
        }
        out.push(Value::Object(address));
    }
    Some(Value::Array(out))
}
