//! TaskService end to end: tonic client → gateway → HTTP → emulator, checking both the gRPC
//! answer and what the emulator received.

mod common;

use close_gateway::proto::close::v1::*;
use prost_types::value::Kind;
use prost_types::{FieldMask, Struct, Timestamp, Value as PbValue};
use serde_json::{Value, json};
use tonic::Code;

/// 2024-05-01T00:00:00Z: a plain day.
const MAY_1: i64 = 1_714_521_600;
/// 2024-05-02T10:00:00Z.
const MAY_2_10H: i64 = 1_714_644_000;

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn text(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.to_owned())),
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

async fn with_lead() -> (common::TestGateway, String) {
    let gw = common::start().await;
    let lead = gw.emulator.insert_lead(json!({"name": "Acme"}));
    (gw, lead)
}

fn insert_task(gw: &common::TestGateway, lead: &str, id: &str, date: &str, done: bool) {
    gw.emulator.insert_task(json!({
        "id": id, "_type": "lead", "lead_id": lead, "text": format!("task {id}"),
        "date": date, "is_complete": done, "assigned_to": "user_ann",
    }));
}

#[tokio::test]
async fn create_sends_close_body_and_returns_typed_task() {
    let (gw, lead) = with_lead().await;
    let task = gw
        .tasks()
        .create_task(CreateTaskRequest {
            lead_id: lead.clone(),
            r#type: String::new(),
            text: "Call back".into(),
            assigned_to: "user_ann".into(),
            date: ts(MAY_1),
            extra: extra(&[
                ("_type", text("email_followup")),
                ("priority", text("high")),
            ]),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();

    assert!(task.id.starts_with("task_"), "{}", task.id);
    assert_eq!(task.r#type, "lead");
    assert_eq!(task.lead_id, lead);
    assert_eq!(task.text, "Call back");
    assert_eq!(task.assigned_to, "user_ann");
    assert_eq!(task.date, ts(MAY_1));
    assert!(!task.is_complete);
    let extra = task.extra.unwrap();
    assert_eq!(extra.fields.get("priority"), Some(&text("high")));
    assert!(extra.fields.contains_key("date_created"));

    let sent = gw.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, "/api/v1/task/");
    assert_eq!(
        sent[0].body,
        Some(json!({
            "_type": "lead", "lead_id": lead, "text": "Call back", "assigned_to": "user_ann",
            "date": "2024-05-01", "priority": "high",
        }))
    );
}

#[tokio::test]
async fn create_outgoing_call_with_a_time_of_day() {
    let (gw, lead) = with_lead().await;
    let task = gw
        .tasks()
        .create_task(CreateTaskRequest {
            lead_id: lead.clone(),
            r#type: "outgoing_call".into(),
            text: "Ring them".into(),
            date: ts(MAY_2_10H),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(task.r#type, "outgoing_call");
    assert_eq!(task.date, ts(MAY_2_10H));
    let body = gw.last().body.unwrap();
    assert_eq!(body["_type"], "outgoing_call");
    assert_eq!(body["date"], "2024-05-02T10:00:00.000000+00:00");
}

#[tokio::test]
async fn create_rejects_bad_requests_without_calling_close() {
    let (gw, lead) = with_lead().await;
    let cases = [
        (
            CreateTaskRequest {
                lead_id: lead.clone(),
                r#type: "email_followup".into(),
                text: "x".into(),
                ..Default::default()
            },
            vec!["type"],
        ),
        (
            CreateTaskRequest {
                lead_id: String::new(),
                text: "  ".into(),
                assigned_to: "cont_1".into(),
                ..Default::default()
            },
            vec!["lead_id", "text", "assigned_to"],
        ),
        (
            CreateTaskRequest {
                lead_id: "lead_a/../b".into(),
                text: "x".into(),
                ..Default::default()
            },
            vec!["lead_id"],
        ),
    ];
    for (request, fields) in cases {
        let status = gw.tasks().create_task(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(common::reason(&status), "INVALID_ARGUMENT");
        assert_eq!(common::violated_fields(&status), fields);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn close_field_errors_come_back_as_bad_request() {
    let gw = common::start().await;
    let status = gw
        .tasks()
        .create_task(CreateTaskRequest {
            lead_id: "lead_doesnotexist".into(),
            text: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::reason(&status), "CLOSE_REJECTED_REQUEST");
    assert_eq!(common::violated_fields(&status), ["lead"]);
    assert_eq!(gw.received().len(), 1);
}

#[tokio::test]
async fn get_returns_typed_task_and_keeps_the_rest() {
    let (gw, lead) = with_lead().await;
    insert_task(&gw, &lead, "task_one", "2024-05-02T10:00:00+00:00", false);
    let task = gw
        .tasks()
        .get_task(GetTaskRequest {
            id: "task_one".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(task.id, "task_one");
    assert_eq!(task.lead_id, lead);
    assert_eq!(task.text, "task task_one");
    assert_eq!(task.date, ts(MAY_2_10H));
    assert_eq!(task.due_date, ts(MAY_2_10H));
    let extra = task.extra.unwrap();
    assert_eq!(extra.fields.get("lead_name"), Some(&text("Acme")));
    assert!(!extra.fields.contains_key("text"));

    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", "/api/v1/task/task_one/")
    );
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_bad_ids_never_leave() {
    let gw = common::start().await;
    let status = gw
        .tasks()
        .get_task(GetTaskRequest {
            id: "task_missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(gw.last().status, 404);
    let status = gw
        .tasks()
        .delete_task(DeleteTaskRequest {
            id: "task_missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    gw.emulator.clear_requests();
    for id in ["", "lead_abc", "task_../lead", "task_x?y=1"] {
        let get = gw.tasks().get_task(GetTaskRequest { id: id.into() }).await;
        let complete = gw
            .tasks()
            .complete_task(CompleteTaskRequest { id: id.into() })
            .await;
        let delete = gw
            .tasks()
            .delete_task(DeleteTaskRequest { id: id.into() })
            .await;
        for status in [get.unwrap_err(), complete.unwrap_err(), delete.unwrap_err()] {
            assert_eq!(status.code(), Code::InvalidArgument, "{id}");
            assert_eq!(common::violated_fields(&status), ["id"]);
        }
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn list_pages_through_a_lead_with_filters() {
    let (gw, lead) = with_lead().await;
    let other = gw.emulator.insert_lead(json!({"name": "Other"}));
    insert_task(&gw, &lead, "task_a", "2024-05-01", false);
    insert_task(&gw, &lead, "task_b", "2024-05-03", false);
    insert_task(&gw, &lead, "task_c", "2024-05-02", false);
    insert_task(&gw, &lead, "task_done", "2024-05-02", true);
    insert_task(&gw, &other, "task_elsewhere", "2024-05-02", false);

    let request = ListTasksRequest {
        page_size: 2,
        lead_id: lead.clone(),
        assigned_to: "user_ann".into(),
        is_complete: Some(false),
        r#type: "lead".into(),
        order_by: "-date".into(),
        ..Default::default()
    };
    let first = gw
        .tasks()
        .list_tasks(request.clone())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = first.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["task_b", "task_c"]);
    assert!(!first.next_page_token.is_empty());
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", "/api/v1/task/")
    );
    assert_eq!(
        sent.query,
        query(&[
            ("_skip", "0"),
            ("_limit", "2"),
            ("lead_id", &lead),
            ("assigned_to", "user_ann"),
            ("_type", "lead"),
            ("_order_by", "-date"),
            ("is_complete", "false"),
        ])
    );

    let second = gw
        .tasks()
        .list_tasks(ListTasksRequest {
            page_token: first.next_page_token,
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = second.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["task_a"]);
    assert_eq!(second.next_page_token, "");
    assert_eq!(gw.last().query[0], ("_skip".to_owned(), "2".to_owned()));
}

#[tokio::test]
async fn list_views_map_to_close_names() {
    let (gw, lead) = with_lead().await;
    insert_task(&gw, &lead, "task_open", "2024-05-01", false);
    insert_task(&gw, &lead, "task_done", "2024-05-01", true);
    let archive = gw
        .tasks()
        .list_tasks(ListTasksRequest {
            view: TaskView::Archive as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = archive.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["task_done"]);
    assert_eq!(
        gw.last().query,
        query(&[("_skip", "0"), ("_limit", "100"), ("view", "archive")])
    );
    for (view, name) in [(TaskView::Inbox, "inbox"), (TaskView::Future, "future")] {
        gw.tasks()
            .list_tasks(ListTasksRequest {
                view: view as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(gw.last().query[2], ("view".to_owned(), name.to_owned()));
    }
}

#[tokio::test]
async fn list_rejects_bad_filters_without_calling_close() {
    let gw = common::start().await;
    let cases = [
        (
            ListTasksRequest {
                page_size: 201,
                ..Default::default()
            },
            vec!["page_size"],
        ),
        (
            ListTasksRequest {
                page_token: "garbage!".into(),
                ..Default::default()
            },
            vec!["page_token"],
        ),
        (
            ListTasksRequest {
                lead_id: "cont_1".into(),
                assigned_to: "lead_1".into(),
                r#type: "lead&view=archive".into(),
                order_by: "date;x".into(),
                view: 9,
                ..Default::default()
            },
            vec!["lead_id", "assigned_to", "type", "order_by", "view"],
        ),
    ];
    for (request, fields) in cases {
        let status = gw.tasks().list_tasks(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(common::violated_fields(&status), fields);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn update_sends_only_masked_fields() {
    let (gw, lead) = with_lead().await;
    insert_task(&gw, &lead, "task_one", "2024-05-01", false);
    let task = Task {
        id: "task_one".into(),
        text: "Changed".into(),
        assigned_to: "user_bob".into(),
        due_date: ts(MAY_2_10H),
        extra: extra(&[("priority", text("low"))]),
        ..Default::default()
    };
    let updated = gw
        .tasks()
        .update_task(UpdateTaskRequest {
            task: Some(task),
            update_mask: mask(&["text", "date", "due_date", "extra.priority"]),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(updated.text, "Changed");
    assert_eq!(updated.assigned_to, "user_ann", "not masked, not changed");
    assert_eq!(updated.date, None);
    assert_eq!(updated.due_date, ts(MAY_2_10H));
    let extra = updated.extra.unwrap();
    assert_eq!(extra.fields.get("priority"), Some(&text("low")));

    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("PUT", "/api/v1/task/task_one/")
    );
    assert_eq!(
        sent.body,
        Some(json!({
            "text": "Changed", "date": null,
            "due_date": "2024-05-02T10:00:00.000000+00:00", "priority": "low",
        }))
    );
}

#[tokio::test]
async fn update_rejects_bad_masks_and_ids_without_calling_close() {
    let gw = common::start().await;
    let task = |id: &str| {
        Some(Task {
            id: id.into(),
            ..Default::default()
        })
    };
    let cases = [
        (task("task_one"), None, "update_mask"),
        (task("task_one"), mask(&["type"]), "update_mask"),
        (task("task_one"), mask(&["custom.cf_x"]), "update_mask"),
        (task("task_one"), mask(&["extra.text"]), "update_mask"),
        (task("lead_one"), mask(&["text"]), "task.id"),
        (None, mask(&["text"]), "task.id"),
    ];
    for (task, update_mask, field) in cases {
        let status = gw
            .tasks()
            .update_task(UpdateTaskRequest { task, update_mask })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(common::violated_fields(&status), [field]);
    }
    assert_eq!(gw.received(), vec![]);
}

#[tokio::test]
async fn complete_then_reopen() {
    let (gw, lead) = with_lead().await;
    insert_task(&gw, &lead, "task_one", "2024-05-01", false);
    let done = gw
        .tasks()
        .complete_task(CompleteTaskRequest {
            id: "task_one".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(done.is_complete);
    let extra = done.extra.unwrap();
    assert_eq!(
        extra.fields.get("object_type"),
        Some(&text("taskcompleted"))
    );
    let Some(Kind::StringValue(activity)) =
        extra.fields.get("object_id").and_then(|v| v.kind.clone())
    else {
        panic!("no object_id: {extra:?}");
    };
    assert!(activity.starts_with("acti_"), "{activity}");
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("PUT", "/api/v1/task/task_one/")
    );
    assert_eq!(sent.body, Some(json!({"is_complete": true})));

    // A masked `is_complete` of false is a value: it reopens the task.
    let reopened = gw
        .tasks()
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                id: "task_one".into(),
                ..Default::default()
            }),
            update_mask: mask(&["is_complete"]),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(!reopened.is_complete);
    assert_eq!(gw.last().body, Some(json!({"is_complete": false})));
}

#[tokio::test]
async fn delete_removes_the_task() {
    let (gw, lead) = with_lead().await;
    insert_task(&gw, &lead, "task_one", "2024-05-01", false);
    let answer = gw
        .tasks()
        .delete_task(DeleteTaskRequest {
            id: "task_one".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer, DeleteTaskResponse {});
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str(), sent.body),
        ("DELETE", "/api/v1/task/task_one/", None::<Value>)
    );
    let status = gw
        .tasks()
        .get_task(GetTaskRequest {
            id: "task_one".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}
