//! ActivityService reads, updates and deletes end to end, including the type lookup of
//! Get / Update / Delete: exactly one extra request when the type is unspecified.

mod activity_support;
mod common;

use activity_support::*;
use close_gateway::proto::close::v1::*;
use prost_types::Timestamp;
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
