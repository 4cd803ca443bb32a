//! Sample data for `--dev` and demos, with fixed ids so documentation can name them:
//! five leads (`lead_dev1AcmeRockets` ... `lead_dev5Hooli`) with contacts and custom fields,
//! three tasks and a few notes, calls, emails and SMS. It belongs to the first configured
//! key's organization.

use serde_json::{Value, json};

use super::activity;
use super::lead;
use super::routes_task;
use super::state::Inner;
use super::time::{format_micros, now_iso, now_micros};

/// The best-known sample lead: "Acme Rockets", status Potential, contact Wile E. Coyote.
pub const DEV_LEAD_ID: &str = "lead_dev1AcmeRockets";

const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// Loads the sample data.
pub(crate) fn load(inner: &Inner) {
    let caller = inner.default_caller();
    let now = now_iso();
    let mut store = inner.store();
    for (n, body) in leads().into_iter().enumerate() {
        let Some(map) = body.as_object() else {
            continue;
        };
        let (lead, _) = lead::build(map, &caller, &now, true);
        let id = lead["id"].as_str().unwrap_or_default().to_owned();
        let mut created = activity::shell("Created", &id, &caller, &now);
        created.insert("id".into(), format!("acti_devCreated{}", n + 1).into());
        created.insert("source".into(), "api".into());
        store.leads.insert(&id, lead);
        store.add_activity(created);
    }
    let today = format_micros(now_micros());
    let next_week = format_micros(now_micros() + 7 * DAY_MICROS);
    let tasks = [
        json!({"id": "task_dev1CallWile", "lead_id": DEV_LEAD_ID, "_type": "outgoing_call",
               "text": "Call Wile about the launch window", "date": today}),
        json!({"id": "task_dev2SendQuote", "lead_id": "lead_dev2GlobexCorp",
               "text": "Send the quote for 40 seats", "date": next_week}),
        json!({"id": "task_dev3Onboard", "lead_id": "lead_dev4Umbrella",
               "text": "Onboarding call", "date": today, "is_complete": true}),
    ];
    for body in tasks {
        let Some(map) = body.as_object() else {
            continue;
        };
        if let Ok(task) = routes_task::build(&store, map, &caller, &now, true) {
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            store.tasks.insert(&id, task);
        }
    }
    for (type_name, id, lead_id, fields) in activities() {
        let mut act = activity::shell(type_name, lead_id, &caller, &now);
        act.insert("id".into(), id.into());
        if let Value::Object(fields) = fields {
            act.extend(fields);
        }
        store.add_activity(act);
    }
}

fn leads() -> Vec<Value> {
    vec![
        json!({
            "id": DEV_LEAD_ID, "name": "Acme Rockets", "status_id": "stat_1PotentialEmulator",
            "url": "https://acme.example.com", "description": "Rocket-powered everything.",
            "contacts": [{"id": "cont_dev1WileCoyote", "name": "Wile E. Coyote",
                "title": "Chief Engineer",
                "emails": [{"email": "wile@acme.example.com", "type": "office"}],
                "phones": [{"phone": "+16505550101", "type": "office"}]}],
            "addresses": [{"label": "business", "address_1": "1 Mesa Road", "city": "Tucson",
                "state": "AZ", "zipcode": "85701", "country": "US"}],
            "custom": {"cf_devIndustry": "Aerospace", "cf_devSeats": 25},
        }),
        json!({
            "id": "lead_dev2GlobexCorp", "name": "Globex Corporation",
            "status_id": "stat_3QualifiedEmulator", "url": "https://globex.example.com",
            "contacts": [{"id": "cont_dev2HankScorpio", "name": "Hank Scorpio", "title": "CEO",
                "emails": [{"email": "hank@globex.example.com", "type": "office"}],
                "phones": [{"phone": "+16505550102", "type": "mobile"}]}],
            "custom": {"cf_devIndustry": "Energy", "cf_devSeats": 40},
        }),
        json!({
            "id": "lead_dev3Initech", "name": "Initech", "status_id": "stat_2BadFitEmulator",
            "contacts": [{"id": "cont_dev3BillLumbergh", "name": "Bill Lumbergh",
                "title": "Division VP",
                "emails": [{"email": "bill@initech.example.com", "type": "office"}]}],
            "custom": {"cf_devIndustry": "Software"},
        }),
        json!({
            "id": "lead_dev4Umbrella", "name": "Umbrella Corp",
            "status_id": "stat_4CustomerEmulator",
            "contacts": [{"id": "cont_dev4AlbertWesker", "name": "Albert Wesker",
                "emails": [{"email": "wesker@umbrella.example.com", "type": "office"}],
                "phones": [{"phone": "+16505550104", "type": "office"}]}],
            "custom": {"cf_devIndustry": "Pharmaceuticals", "cf_devSeats": 300},
        }),
        json!({
            "id": "lead_dev5Hooli", "name": "Hooli", "status_id": "stat_1PotentialEmulator",
            "contacts": [{"id": "cont_dev5GavinBelson", "name": "Gavin Belson",
                "emails": [{"email": "gavin@hooli.example.com", "type": "office"}]}],
        }),
    ]
}

fn activities() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        (
            "Note",
            "acti_dev1NoteAcme",
            DEV_LEAD_ID,
            json!({"note": "Interested in the ACME-9000.",
                   "note_html": "<p>Interested in the ACME-9000.</p>"}),
        ),
        (
            "Call",
            "acti_dev2CallAcme",
            DEV_LEAD_ID,
            json!({"contact_id": "cont_dev1WileCoyote", "direction": "outbound",
                   "status": "completed", "duration": 312, "phone": "+16505550101",
                   "note": "Discussed launch dates."}),
        ),
        (
            "Email",
            "acti_dev3EmailGlobex",
            "lead_dev2GlobexCorp",
            json!({"contact_id": "cont_dev2HankScorpio", "direction": "outgoing",
                   "status": "sent", "subject": "Your quote",
                   "sender": "Emulator User <emulator@example.com>",
                   "to": ["hank@globex.example.com"], "cc": [], "bcc": [],
                   "body_text": "Hi Hank, the quote is attached."}),
        ),
        (
            "SMS",
            "acti_dev4SmsInitech",
            "lead_dev3Initech",
            json!({"contact_id": "cont_dev3BillLumbergh", "direction": "inbound",
                   "status": "inbox", "text": "Yeah, I'm going to need you to call back.",
                   "local_phone": "+16505550100", "remote_phone": "+16505550103"}),
        ),
        (
            "Meeting",
            "acti_dev5MeetingUmbrella",
            "lead_dev4Umbrella",
            json!({"title": "Quarterly review", "duration": 1800, "status": "completed"}),
        ),
    ]
}
