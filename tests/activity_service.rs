//! ActivityService end to end: tonic client → gateway → HTTP → emulator, checking both the
//! gRPC answer and what the emulator received, including the one-request type lookup.

mod common;

use close_gateway::proto::close::v1::*;
use prost_types::value::Kind;
use prost_types::{FieldMask, Struct, Timestamp, Value as PbValue};
use serde_json::{Value, json};
use tonic::Code;

/// Every addressable type with Close's `_type` and URL segment, written out independently of
/// the gateway's own table.
const TYPES: &[(ActivityType, &str, &str)] = &[
    (ActivityType::Email, "Email", "email"),
    (ActivityType::Note, "Note", "note"),
    (ActivityType::Call, "Call", "call"),
    (ActivityType::Sms, "SMS", "sms"),
    (ActivityType::Meeting, "Meeting", "meeting"),
    (ActivityType::EmailThread, "EmailThread", "emailthread"),
    (ActivityType::Created, "Created", "created"),
    (
        ActivityType::TaskCompleted,
        "TaskCompleted",
        "task_completed",
    ),
    (
        ActivityType::LeadStatusChange,
        "LeadStatusChange",
        "status_change/lead",
    ),
    (
        ActivityType::OpportunityStatusChange,
        "OpportunityStatusChange",
        "status_change/opportunity",
    ),
    (ActivityType::Custom, "CustomActivity", "custom"),
    (
        ActivityType::WhatsappMessage,
        "WhatsAppMessage",
        "whatsapp_message",
    ),
    (
        ActivityType::FormSubmission,
        "FormSubmission",
        "form_submission",
    ),
    (ActivityType::LeadMerge, "LeadMerge", "lead_merge"),
];

fn text(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn boolean(b: bool) -> PbValue {
    PbValue {
        kind: Some(Kind::BoolValue(b)),
    }
}

fn extra(pairs: &[(&str, PbValue)]) -> Option<Struct> {
    Some(Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    })
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// (method, path) of every request the emulator received.
fn calls(gw: &common::TestGateway) -> Vec<(String, String)> {
    gw.received()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

fn call(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), path.to_owned())
}

/// The type lookup: `GET /activity/?id__in=<id>&_fields=id,_type`.
fn assert_lookup(request: &close_gateway::emulator::RecordedRequest, id: &str) {
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/api/v1/activity/")
    );
    assert_eq!(
        request.query,
        query(&[("id__in", id), ("_fields", "id,_type")])
    );
}

async fn with_lead() -> (common::TestGateway, String) {
    let gw = common::start().await;
    let lead = gw.emulator.insert_lead(json!({"name": "Acme"}));
    (gw, lead)
}

#[tokio::test]
async fn create_email_sends_close_body_and_returns_typed_activity() {
    let (gw, lead) = with_lead().await;
    let activity = gw
        .activities()
        .create_email_activity(CreateEmailActivityRequest {
            lead_id: lead.clone(),
            contact_id: "cont_wile".into(),
            direction: "outgoing".into(),
            status: "sent".into(),
            subject: "Anvils".into(),
            body_text: "Two, please.".into(),
            body_html: "<p>Two, please.</p>".into(),
            sender: "Ann <ann@example.com>".into(),
            to: vec!["wile@acme.example".into()],
            cc: vec![],
            bcc: vec!["log@example.com".into()],
            extra: extra(&[("followup_date", text("2024-05-01"))]),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();

    assert!(activity.id.starts_with("acti_"), "{}", activity.id);
    assert_eq!(activity.r#type, ActivityType::Email as i32);
    assert_eq!(activity.lead_id, lead);
    assert_eq!(activity.contact_id, "cont_wile");
    assert_eq!(activity.user_id, "user_testkey");
    assert_eq!(activity.direction, "outgoing");
    assert_eq!(activity.status, "sent");
    assert_eq!(activity.subject, "Anvils");
    assert_eq!(activity.body_text, "Two, please.");
    assert!(activity.date_created.is_some());
    assert!(activity.activity_at.is_some());
    let extra = activity.extra.unwrap();
    assert_eq!(extra.fields.get("_type"), Some(&text("Email")));
    assert_eq!(
        extra.fields.get("body_html"),
        Some(&text("<p>Two, please.</p>"))
    );
    assert_eq!(extra.fields.get("followup_date"), Some(&text("2024-05-01")));

    let sent = gw.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("POST", "/api/v1/activity/email/")
    );
    assert_eq!(
        sent[0].body,
        Some(json!({
            "lead_id": lead, "contact_id": "cont_wile", "direction": "outgoing",
            "status": "sent", "subject": "Anvils", "body_text": "Two, please.",
            "body_html": "<p>Two, please.</p>", "sender": "Ann <ann@example.com>",
            "to": ["wile@acme.example"], "bcc": ["log@example.com"],
            "followup_date": "2024-05-01",
        }))
    );
}

#[tokio::test]
async fn create_email_rejects_bad_requests_without_calling_close() {
    let (gw, lead) = with_lead().await;
    let email = |status: &str| CreateEmailActivityRequest {
        lead_id: lead.clone(),
        status: status.into(),
        ..Default::default()
    };
    let cases = [
        (email(""), vec!["status"]),
        (email("delivered"), vec!["status"]),
        (email("inbox"), vec!["sender"]),
        (email("outbox"), vec!["sender"]),
        (
            CreateEmailActivityRequest {
                lead_id: String::new(),
                contact_id: "lead_x".into(),
                direction: "inbound".into(),
                ..email("draft")
            },
            vec!["lead_id", "contact_id", "direction"],
        ),
        (
            CreateEmailActivityRequest {
                to: vec!["x".repeat(5000)],
                ..email("draft")
            },
            vec!["to[0]"],
        ),
    ];
    for (request, fields) in cases {
        let status = gw
            .activities()
            .create_email_activity(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(common::violated_fields(&status), fields);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn create_note_from_text_or_html() {
    let (gw, lead) = with_lead().await;
    let activity = gw
        .activities()
        .create_note_activity(CreateNoteActivityRequest {
            lead_id: lead.clone(),
            note: "Likes anvils".into(),
            extra: extra(&[("pinned", boolean(true))]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(activity.r#type, ActivityType::Note as i32);
    assert_eq!(activity.note, "Likes anvils");
    assert_eq!(activity.lead_id, lead);
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v1/activity/note/")
    );
    assert_eq!(
        sent.body,
        Some(json!({"lead_id": lead, "note": "Likes anvils", "pinned": true}))
    );

    let html = gw
        .activities()
        .create_note_activity(CreateNoteActivityRequest {
            lead_id: lead.clone(),
            note_html: "<b>Bold</b>".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(html.note, "Bold");
    let fields = html.extra.unwrap().fields;
    assert_eq!(fields.get("note_html"), Some(&text("<b>Bold</b>")));
    assert_eq!(
        gw.last().body,
        Some(json!({"lead_id": lead, "note_html": "<b>Bold</b>"}))
    );
}

#[tokio::test]
async fn create_note_needs_a_lead_and_a_note() {
    let gw = common::start().await;
    let status = gw
        .activities()
        .create_note_activity(CreateNoteActivityRequest {
            note: " ".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&status), ["lead_id", "note"]);
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn create_call_sends_close_body() {
    let (gw, lead) = with_lead().await;
    let activity = gw
        .activities()
        .create_call_activity(CreateCallActivityRequest {
            lead_id: lead.clone(),
            direction: "inbound".into(),
            status: "completed".into(),
            duration: 125,
            phone: "+15551234567".into(),
            note: "Wants a quote".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(activity.r#type, ActivityType::Call as i32);
    assert_eq!(activity.direction, "inbound");
    assert_eq!(activity.status, "completed");
    assert_eq!(activity.note, "Wants a quote");
    let fields = activity.extra.unwrap().fields;
    assert_eq!(
        fields.get("duration"),
        Some(&PbValue {
            kind: Some(Kind::NumberValue(125.0))
        })
    );
    assert_eq!(fields.get("phone"), Some(&text("+15551234567")));
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v1/activity/call/")
    );
    assert_eq!(
        sent.body,
        Some(json!({
            "lead_id": lead, "direction": "inbound", "status": "completed", "duration": 125,
            "phone": "+15551234567", "note": "Wants a quote",
        }))
    );
}

#[tokio::test]
async fn create_call_rejects_email_directions_and_negative_durations() {
    let (gw, lead) = with_lead().await;
    let status = gw
        .activities()
        .create_call_activity(CreateCallActivityRequest {
            lead_id: lead,
            direction: "outgoing".into(),
            duration: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&status), ["direction", "duration"]);
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn create_sms_maps_text_to_body_text() {
    let (gw, lead) = with_lead().await;
    let activity = gw
        .activities()
        .create_sms_activity(CreateSmsActivityRequest {
            lead_id: lead.clone(),
            status: "sent".into(),
            text: "On my way".into(),
            local_phone: "+15550000001".into(),
            remote_phone: "+15550000002".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(activity.r#type, ActivityType::Sms as i32);
    assert_eq!(activity.body_text, "On my way");
    assert_eq!(activity.direction, "outbound");
    assert!(!activity.extra.unwrap().fields.contains_key("text"));
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v1/activity/sms/")
    );
    assert_eq!(
        sent.body,
        Some(json!({
            "lead_id": lead, "status": "sent", "text": "On my way",
            "local_phone": "+15550000001", "remote_phone": "+15550000002",
        }))
    );

    // A template stands in for the text.
    gw.activities()
        .create_sms_activity(CreateSmsActivityRequest {
            lead_id: lead.clone(),
            status: "draft".into(),
            extra: extra(&[("template_id", text("tmpl_1"))]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        gw.last().body,
        Some(json!({"lead_id": lead, "status": "draft", "template_id": "tmpl_1"}))
    );
}

#[tokio::test]
async fn create_sms_rejects_bad_requests_without_calling_close() {
    let (gw, lead) = with_lead().await;
    let status = gw
        .activities()
        .create_sms_activity(CreateSmsActivityRequest {
            lead_id: lead.clone(),
            direction: "incoming".into(),
            status: "error".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        common::violated_fields(&status),
        ["direction", "status", "text"]
    );
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn creates_are_posted_once_even_when_close_fails() {
    let (gw, lead) = with_lead().await;
    gw.emulator.set_faults(close_gateway::emulator::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let status = gw
        .activities()
        .create_note_activity(CreateNoteActivityRequest {
            lead_id: lead,
            note: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(common::reason(&status), "OUTCOME_UNKNOWN");
    assert_eq!(calls(&gw), [call("POST", "/api/v1/activity/note/")]);
}

#[tokio::test]
async fn list_filters_one_lead_by_type_and_pages() {
    let (gw, lead) = with_lead().await;
    let other = gw.emulator.insert_lead(json!({"name": "Other"}));
    let note = gw
        .emulator
        .insert_activity(json!({"_type": "Note", "lead_id": lead, "note": "n"}));
    let email = gw
        .emulator
        .insert_activity(json!({"_type": "Email", "lead_id": lead, "subject": "s"}));
    let sms = gw
        .emulator
        .insert_activity(json!({"_type": "SMS", "lead_id": lead, "text": "t"}));
    gw.emulator
        .insert_activity(json!({"_type": "Note", "lead_id": other}));

    let request = ListActivitiesRequest {
        page_size: 1,
        lead_id: lead.clone(),
        types: vec![ActivityType::Note as i32, ActivityType::Sms as i32],
        ..Default::default()
    };
    let first = gw
        .activities()
        .list_activities(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.activities.len(), 1);
    assert_eq!(first.activities[0].id, sms, "newest first");
    assert_eq!(first.activities[0].body_text, "t");
    assert_eq!(first.activities[0].r#type, ActivityType::Sms as i32);
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", "/api/v1/activity/")
    );
    assert_eq!(
        sent.query,
        query(&[
            ("_skip", "0"),
            ("_limit", "1"),
            ("lead_id", &lead),
            ("_type__in", "Note,SMS"),
        ])
    );
    let second = gw
        .activities()
        .list_activities(ListActivitiesRequest {
            page_token: first.next_page_token,
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.activities.len(), 1);
    assert_eq!(second.activities[0].id, note);
    assert_eq!(second.activities[0].note, "n");
    assert_eq!(second.next_page_token, "");

    let all = gw
        .activities()
        .list_activities(ListActivitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.activities.len(), 4);
    assert_eq!(all.activities[2].id, email);
    assert_eq!(all.activities[2].subject, "s");
    assert_eq!(gw.last().query, query(&[("_skip", "0"), ("_limit", "100")]));
}

#[tokio::test]
async fn list_by_contact_and_user_within_a_lead() {
    let (gw, lead) = with_lead().await;
    let mine = gw.emulator.insert_activity(
        json!({"_type": "Call", "lead_id": lead, "contact_id": "cont_a", "user_id": "user_a"}),
    );
    gw.emulator.insert_activity(
        json!({"_type": "Call", "lead_id": lead, "contact_id": "cont_b", "user_id": "user_a"}),
    );
    let page = gw
        .activities()
        .list_activities(ListActivitiesRequest {
            lead_id: lead.clone(),
            contact_id: "cont_a".into(),
            user_id: "user_a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = page.activities.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [mine.as_str()]);
    assert_eq!(page.activities[0].contact_id, "cont_a");
    assert_eq!(page.activities[0].user_id, "user_a");
    assert_eq!(
        gw.last().query,
        query(&[
            ("_skip", "0"),
            ("_limit", "100"),
            ("lead_id", &lead),
            ("contact_id", "cont_a"),
            ("user_id", "user_a"),
        ])
    );
}

#[tokio::test]
async fn list_rejects_filters_close_cannot_apply_without_calling_it() {
    let gw = common::start().await;
    let cases = [
        (
            ListActivitiesRequest {
                types: vec![ActivityType::Note as i32],
                contact_id: "cont_a".into(),
                user_id: "user_a".into(),
                ..Default::default()
            },
            vec!["types", "contact_id", "user_id"],
        ),
        (
            ListActivitiesRequest {
                lead_id: "lead_a".into(),
                types: vec![
                    ActivityType::Note as i32,
                    ActivityType::Other as i32,
                    ActivityType::Unspecified as i32,
                    77,
                ],
                ..Default::default()
            },
            vec!["types[1]", "types[2]", "types[3]"],
        ),
        (
            ListActivitiesRequest {
                lead_id: "task_a".into(),
                page_size: 101,
                ..Default::default()
            },
            vec!["page_size"],
        ),
        (
            ListActivitiesRequest {
                lead_id: "task_a".into(),
                contact_id: "user_a".into(),
                user_id: "cont_a".into(),
                ..Default::default()
            },
            vec!["lead_id", "contact_id", "user_id"],
        ),
    ];
    for (request, fields) in cases {
        let status = gw.activities().list_activities(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(common::violated_fields(&status), fields);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn get_every_type_by_its_path_with_and_without_a_lookup() {
    let (gw, lead) = with_lead().await;
    for (ty, close, path) in TYPES {
        let id = gw
            .emulator
            .insert_activity(json!({"_type": close, "lead_id": lead}));

        gw.emulator.clear_requests();
        let known = gw
            .activities()
            .get_activity(GetActivityRequest {
                id: id.clone(),
                r#type: *ty as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .activity
            .unwrap();
        assert_eq!(known.id, id);
        assert_eq!(known.r#type, *ty as i32, "{close}");
        let item = format!("/api/v1/activity/{path}/{id}/");
        assert_eq!(calls(&gw), [call("GET", &item)], "{close}");

        gw.emulator.clear_requests();
        let looked_up = gw
            .activities()
            .get_activity(GetActivityRequest {
                id: id.clone(),
                r#type: ActivityType::Unspecified as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .activity
            .unwrap();
        assert_eq!(looked_up, known, "{close}");
        let sent = gw.received();
        assert_eq!(sent.len(), 2, "{close}: one lookup, one fetch");
        assert_lookup(&sent[0], &id);
        assert_eq!(
            (sent[1].method.as_str(), sent[1].path.as_str()),
            ("GET", item.as_str())
        );
    }
}

#[tokio::test]
async fn get_unknown_or_unaddressable_activities() {
    let (gw, lead) = with_lead().await;
    let status = gw
        .activities()
        .get_activity(GetActivityRequest {
            id: "acti_missing".into(),
            r#type: ActivityType::Unspecified as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let sent = gw.received();
    assert_eq!(sent.len(), 1, "only the lookup");
    assert_lookup(&sent[0], "acti_missing");

    // A known type that is not the activity's: Close's per-type path answers 404.
    let note = gw
        .emulator
        .insert_activity(json!({"_type": "Note", "lead_id": lead}));
    gw.emulator.clear_requests();
    let status = gw
        .activities()
        .get_activity(GetActivityRequest {
            id: note,
            r#type: ActivityType::Call as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(gw.received().len(), 1);

    // A type the gateway does not know cannot be addressed; the caller learns which.
    let odd = gw
        .emulator
        .insert_activity(json!({"_type": "Hologram", "lead_id": lead}));
    gw.emulator.clear_requests();
    let status = gw
        .activities()
        .get_activity(GetActivityRequest {
            id: odd.clone(),
            r#type: ActivityType::Unspecified as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&status), ["id"]);
    assert!(
        status.message().contains("Hologram"),
        "{}",
        status.message()
    );
    assert_eq!(gw.received().len(), 1, "only the lookup");

    // ...but it is listed, as OTHER with its `_type` kept.
    let page = gw
        .activities()
        .list_activities(ListActivitiesRequest {
            lead_id: lead,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed = page.activities.iter().find(|a| a.id == odd).unwrap();
    assert_eq!(listed.r#type, ActivityType::Other as i32);
    let fields = &listed.extra.as_ref().unwrap().fields;
    assert_eq!(fields.get("_type"), Some(&text("Hologram")));
}

#[tokio::test]
async fn get_update_delete_reject_bad_targets_without_calling_close() {
    let gw = common::start().await;
    let bad = [
        ("lead_x", ActivityType::Note as i32, vec!["id"]),
        ("", ActivityType::Unspecified as i32, vec!["id"]),
        ("acti_../x", ActivityType::Unspecified as i32, vec!["id"]),
        ("acti_x", ActivityType::Other as i32, vec!["type"]),
        ("acti_x", 99, vec!["type"]),
    ];
    for (id, ty, fields) in bad {
        let get = gw
            .activities()
            .get_activity(GetActivityRequest {
                id: id.into(),
                r#type: ty,
            })
            .await
            .unwrap_err();
        let delete = gw
            .activities()
            .delete_activity(DeleteActivityRequest {
                id: id.into(),
                r#type: ty,
            })
            .await
            .unwrap_err();
        let update = gw
            .activities()
            .update_activity(UpdateActivityRequest {
                activity: Some(Activity {
                    id: id.into(),
                    r#type: ty,
                    ..Default::default()
                }),
                update_mask: mask(&["note"]),
            })
            .await
            .unwrap_err();
        for status in [&get, &delete] {
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(common::violated_fields(status), fields);
        }
        let prefixed: Vec<String> = fields.iter().map(|f| format!("activity.{f}")).collect();
        assert_eq!(common::violated_fields(&update), prefixed);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn update_sms_after_lookup_sends_text() {
    let (gw, lead) = with_lead().await;
    let id = gw.emulator.insert_activity(
        json!({"_type": "SMS", "lead_id": lead, "status": "draft", "text": "old"}),
    );
    let updated = gw
        .activities()
        .update_activity(UpdateActivityRequest {
            activity: Some(Activity {
                id: id.clone(),
                body_text: "new".into(),
                status: "outbox".into(),
                subject: "not masked".into(),
                ..Default::default()
            }),
            update_mask: mask(&["body_text", "status"]),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(updated.body_text, "new");
    assert_eq!(updated.status, "outbox");
    assert_eq!(updated.subject, "");

    let sent = gw.received();
    assert_eq!(sent.len(), 2, "one lookup, one update");
    assert_lookup(&sent[0], &id);
    assert_eq!(
        (sent[1].method.as_str(), sent[1].path.as_str()),
        ("PUT", format!("/api/v1/activity/sms/{id}/").as_str())
    );
    assert_eq!(
        sent[1].body,
        Some(json!({"text": "new", "status": "outbox"}))
    );
}

#[tokio::test]
async fn update_with_known_type_sends_one_request_and_unsets_empty_fields() {
    let (gw, lead) = with_lead().await;
    let id = gw.emulator.insert_activity(json!({
        "_type": "Note", "lead_id": lead, "note": "old", "contact_id": "cont_a",
    }));
    let updated = gw
        .activities()
        .update_activity(UpdateActivityRequest {
            activity: Some(Activity {
                id: id.clone(),
                r#type: ActivityType::Note as i32,
                note: "new".into(),
                activity_at: Some(Timestamp {
                    seconds: 1_714_644_000,
                    nanos: 0,
                }),
                extra: extra(&[("pinned", boolean(true))]),
                ..Default::default()
            }),
            update_mask: mask(&["note", "contact_id", "activity_at", "extra.pinned"]),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(updated.note, "new");
    assert_eq!(updated.contact_id, "");
    assert_eq!(updated.activity_at.unwrap().seconds, 1_714_644_000);
    let fields = updated.extra.unwrap().fields;
    assert_eq!(fields.get("pinned"), Some(&boolean(true)));

    let sent = gw.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("PUT", format!("/api/v1/activity/note/{id}/").as_str())
    );
    assert_eq!(
        sent[0].body,
        Some(json!({
            "note": "new", "contact_id": null,
            "activity_at": "2024-05-02T10:00:00.000000+00:00", "pinned": true,
        }))
    );
}

#[tokio::test]
async fn update_checks_the_mask_before_the_lookup() {
    let gw = common::start().await;
    let activity = |contact: &str| {
        Some(Activity {
            id: "acti_x".into(),
            contact_id: contact.into(),
            ..Default::default()
        })
    };
    let cases = [
        (activity(""), None, "update_mask"),
        (activity(""), mask(&["lead_id"]), "update_mask"),
        (activity(""), mask(&["type"]), "update_mask"),
        (activity(""), mask(&["extra.note"]), "update_mask"),
        (
            activity("lead_x"),
            mask(&["contact_id"]),
            "activity.contact_id",
        ),
    ];
    for (activity, update_mask, field) in cases {
        let status = gw
            .activities()
            .update_activity(UpdateActivityRequest {
                activity,
                update_mask,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(common::violated_fields(&status), [field]);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn delete_after_lookup_and_with_known_type() {
    let (gw, lead) = with_lead().await;
    let email = gw
        .emulator
        .insert_activity(json!({"_type": "Email", "lead_id": lead}));
    let change = gw
        .emulator
        .insert_activity(json!({"_type": "OpportunityStatusChange", "lead_id": lead}));

    let answer = gw
        .activities()
        .delete_activity(DeleteActivityRequest {
            id: email.clone(),
            r#type: ActivityType::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer, DeleteActivityResponse {});
    let sent = gw.received();
    assert_eq!(sent.len(), 2);
    assert_lookup(&sent[0], &email);
    assert_eq!(
        (
            sent[1].method.as_str(),
            sent[1].path.as_str(),
            &sent[1].body
        ),
        (
            "DELETE",
            format!("/api/v1/activity/email/{email}/").as_str(),
            &None::<Value>
        )
    );

    gw.emulator.clear_requests();
    gw.activities()
        .delete_activity(DeleteActivityRequest {
            id: change.clone(),
            r#type: ActivityType::OpportunityStatusChange as i32,
        })
        .await
        .unwrap();
    let path = format!("/api/v1/activity/status_change/opportunity/{change}/");
    assert_eq!(calls(&gw), [call("DELETE", &path)]);

    // Gone: the lookup finds nothing.
    gw.emulator.clear_requests();
    let status = gw
        .activities()
        .delete_activity(DeleteActivityRequest {
            id: email.clone(),
            r#type: ActivityType::Unspecified as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(gw.received().len(), 1);
}
