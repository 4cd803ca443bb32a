//! ActivityService creates end to end: tonic client → gateway → HTTP → emulator, checking
//! both the gRPC answer and what the emulator received. Reads, updates and deletes (with the
//! type lookup) are in `activity_service_read.rs`.

mod activity_support;
mod common;

use activity_support::*;
use close_gateway::proto::close::v1::*;
use prost_types::Value as PbValue;
use prost_types::value::Kind;
use serde_json::json;
use tonic::Code;

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
