//! TaskService: Close tasks (`/task/`) with typed fields and everything else kept in `extra`.

use prost_types::Timestamp;
use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};

use super::convert::put;
use super::convert::{
    decode_page_token, format_timestamp, from_struct, list_page, object, page_limit, take_bool,
    take_string, take_timestamp, to_struct,
};
use super::mask::{self, MaskSpec, Update};
use super::validate::{MAX_TEXT_LEN, Violations, check_id};
use super::{Gateway, context};
use crate::close::CloseRequest;
use crate::error::{Error, invalid};
use crate::proto::close::v1::task_service_server::TaskService as Api;
use crate::proto::close::v1::*;

/// The only task types Close creates; the first is the default.
const CREATABLE_TYPES: &[&str] = &["lead", "outgoing_call"];

const UPDATABLE: MaskSpec = MaskSpec {
    fields: &[
        ("text", "text"),
        ("assigned_to", "assigned_to"),
        ("date", "date"),
        ("due_date", "due_date"),
        ("is_complete", "is_complete"),
    ],
    custom: false,
};

pub struct TaskService {
    gateway: Gateway,
}

impl TaskService {
    pub fn new(gateway: Gateway) -> Self {
        TaskService { gateway }
    }

    async fn send(
        &self,
        upstream: CloseRequest,
        ctx: &crate::close::CallContext,
    ) -> Result<Value, Error> {
        Ok(self.gateway.client.json(&upstream, ctx).await?)
    }
}

#[tonic::async_trait]
impl Api for TaskService {
    async fn get_task(
        &self,
        request: Request<GetTaskRequest>,
    ) -> Result<Response<GetTaskResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        check_id("id", &req.id, "task_")?;
        let body = self
            .send(CloseRequest::get(format!("/task/{}/", req.id)), &ctx)
            .await?;
        let task = task_from_json(object(body)?);
        Ok(Response::new(GetTaskResponse { task: Some(task) }))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let limit = page_limit(req.page_size, 100, 200)?;
        let skip = decode_page_token(&req.page_token)?;
        let mut v = Violations::new();
        v.optional_id("lead_id", &req.lead_id, "lead_");
        v.optional_id("assigned_to", &req.assigned_to, "user_");
        if !req.r#type.is_empty() && !is_word(&req.r#type) {
            v.add(
                "type",
                "must be a task type such as \"lead\" or \"outgoing_call\"",
            );
        }
        if !req.order_by.is_empty() && !is_word(req.order_by.trim_start_matches('-')) {
            v.add(
                "order_by",
                "must be an attribute, optionally prefixed with \"-\"",
            );
        }
        let view = match TaskView::try_from(req.view) {
            Ok(TaskView::Unspecified) => None,
            Ok(TaskView::Inbox) => Some("inbox"),
            Ok(TaskView::Future) => Some("future"),
            Ok(TaskView::Archive) => Some("archive"),
            Err(_) => {
                v.add("view", "is not a known TaskView");
                None
            }
        };
        v.finish()?;
        let mut upstream = CloseRequest::get("/task/")
            .query("_skip", skip.to_string())
            .query("_limit", limit.to_string());
        let filters = [
            ("lead_id", req.lead_id.as_str()),
            ("assigned_to", req.assigned_to.as_str()),
            ("_type", req.r#type.as_str()),
            ("view", view.unwrap_or_default()),
            ("_order_by", req.order_by.as_str()),
        ];
        for (key, value) in filters {
            if !value.is_empty() {
                upstream = upstream.query(key, value);
            }
        }
        if let Some(done) = req.is_complete {
            upstream = upstream.query("is_complete", done.to_string());
        }
        let body = self.send(upstream, &ctx).await?;
        let (objects, next_page_token) = list_page(body, skip)?;
        let tasks = objects.into_iter().map(task_from_json).collect();
        Ok(Response::new(ListTasksResponse {
            tasks,
            next_page_token,
        }))
    }

    async fn create_task(
        &self,
        request: Request<CreateTaskRequest>,
    ) -> Result<Response<CreateTaskResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id, "lead_");
        v.one_of("type", &req.r#type, CREATABLE_TYPES, true);
        v.required("text", &req.text);
        v.max_len("text", &req.text, MAX_TEXT_LEN);
        v.optional_id("assigned_to", &req.assigned_to, "user_");
        v.finish()?;
        let body = create_body(&req)?;
        let created = self
            .send(CloseRequest::post("/task/", Value::Object(body)), &ctx)
            .await?;
        let task = task_from_json(object(created)?);
        Ok(Response::new(CreateTaskResponse { task: Some(task) }))
    }

    async fn update_task(
        &self,
        request: Request<UpdateTaskRequest>,
    ) -> Result<Response<UpdateTaskResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let task = req.task.unwrap_or_default();
        let mut v = Violations::new();
        v.id("task.id", &task.id, "task_");
        v.max_len("task.text", &task.text, MAX_TEXT_LEN);
        v.optional_id("task.assigned_to", &task.assigned_to, "user_");
        v.finish()?;
        let update = Update {
            typed: typed_fields(&task)?,
            custom: None,
            extra: task.extra.as_ref(),
        };
        let body = mask::patch(req.update_mask.as_ref(), &UPDATABLE, &update)?;
        let upstream = CloseRequest::put(format!("/task/{}/", task.id), Value::Object(body));
        let updated = self.send(upstream, &ctx).await?;
        let task = task_from_json(object(updated)?);
        Ok(Response::new(UpdateTaskResponse { task: Some(task) }))
    }

    async fn complete_task(
        &self,
        request: Request<CompleteTaskRequest>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        check_id("id", &req.id, "task_")?;
        let upstream =
            CloseRequest::put(format!("/task/{}/", req.id), json!({"is_complete": true}));
        let completed = self.send(upstream, &ctx).await?;
        let task = task_from_json(object(completed)?);
        Ok(Response::new(CompleteTaskResponse { task: Some(task) }))
    }

    async fn delete_task(
        &self,
        request: Request<DeleteTaskRequest>,
    ) -> Result<Response<DeleteTaskResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        check_id("id", &req.id, "task_")?;
        self.send(CloseRequest::delete(format!("/task/{}/", req.id)), &ctx)
            .await?;
        Ok(Response::new(DeleteTaskResponse {}))
    }
}

/// A Close type name or attribute: lower-case letters, digits and `_`, short.
fn is_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Close's task JSON to the typed message; what is not typed stays in `extra`.
pub fn task_from_json(mut map: Map<String, Value>) -> Task {
    Task {
        id: take_string(&mut map, "id"),
        r#type: take_string(&mut map, "_type"),
        lead_id: take_string(&mut map, "lead_id"),
        text: take_string(&mut map, "text"),
        assigned_to: take_string(&mut map, "assigned_to"),
        date: take_timestamp(&mut map, "date"),
        due_date: take_timestamp(&mut map, "due_date"),
        is_complete: take_bool(&mut map, "is_complete"),
        extra: Some(to_struct(map)),
    }
}

/// The POST body: `extra` first, so that the validated typed fields win over it.
fn create_body(req: &CreateTaskRequest) -> Result<Map<String, Value>, Error> {
    let mut map = req.extra.as_ref().map(from_struct).unwrap_or_default();
    let kind = if req.r#type.is_empty() {
        CREATABLE_TYPES[0]
    } else {
        req.r#type.as_str()
    };
    put(&mut map, "_type", kind);
    put(&mut map, "lead_id", &req.lead_id);
    put(&mut map, "text", &req.text);
    put(&mut map, "assigned_to", &req.assigned_to);
    if let Some(date) = &req.date {
        map.insert("date".into(), Value::String(task_date("date", date)?));
    }
    Ok(map)
}

/// The updatable typed fields under Close's names; an absent key means "no value".
/// `is_complete` always has one: `false` reopens a task.
fn typed_fields(task: &Task) -> Result<Map<String, Value>, Error> {
    let mut map = Map::new();
    put(&mut map, "text", &task.text);
    put(&mut map, "assigned_to", &task.assigned_to);
    if let Some(date) = &task.date {
        map.insert("date".into(), Value::String(task_date("task.date", date)?));
    }
    if let Some(due) = &task.due_date {
        map.insert(
            "due_date".into(),
            Value::String(task_date("task.due_date", due)?),
        );
    }
    map.insert("is_complete".into(), Value::Bool(task.is_complete));
    Ok(map)
}

/// Close stores a task date as a plain day or a moment. We read a plain day as midnight UTC,
/// so midnight UTC goes back as a plain day: a date-only task stays date-only.
pub fn task_date(field: &str, ts: &Timestamp) -> Result<String, Error> {
    let text = format_timestamp(field, ts)?;
    if ts.nanos == 0 && ts.seconds.rem_euclid(86_400) == 0 {
        return text
            .get(..10)
            .map(str::to_owned)
            .ok_or_else(|| invalid(field, "timestamp out of range"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::FieldMask;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn task_json_to_typed_keeps_the_rest() {
        let task = task_from_json(map(json!({
            "id": "task_1", "_type": "lead", "lead_id": "lead_1", "text": "Call back",
            "assigned_to": "user_1", "date": "2024-05-01",
            "due_date": "2024-05-02T10:00:00.000000+00:00", "is_complete": true,
            "object_type": "taskcompleted", "object_id": "acti_9", "date_created": "x"
        })));
        assert_eq!(task.id, "task_1");
        assert_eq!(task.r#type, "lead");
        assert_eq!(task.lead_id, "lead_1");
        assert_eq!(task.text, "Call back");
        assert_eq!(task.assigned_to, "user_1");
        assert_eq!(task.date.unwrap().seconds, 1_714_521_600);
        assert_eq!(task.due_date.unwrap().seconds, 1_714_644_000);
        assert!(task.is_complete);
        let extra = Value::Object(from_struct(&task.extra.unwrap()));
        assert_eq!(
            extra,
            json!({"object_type": "taskcompleted", "object_id": "acti_9", "date_created": "x"})
        );
    }

    #[test]
    fn plain_days_stay_plain_days() {
        let day = Timestamp {
            seconds: 1_714_521_600,
            nanos: 0,
        };
        assert_eq!(task_date("date", &day).unwrap(), "2024-05-01");
        let moment = Timestamp {
            seconds: 1_714_644_000,
            nanos: 0,
        };
        assert_eq!(
            task_date("date", &moment).unwrap(),
            "2024-05-02T10:00:00.000000+00:00"
        );
        let before_1970 = Timestamp {
            seconds: -86_400,
            nanos: 0,
        };
        assert_eq!(task_date("date", &before_1970).unwrap(), "1969-12-31");
    }

    #[test]
    fn create_body_defaults_type_and_typed_fields_win() {
        let req = CreateTaskRequest {
            lead_id: "lead_1".into(),
            text: "Follow up".into(),
            extra: Some(to_struct(map(json!({"_type": "email_followup", "x": 1})))),
            ..Default::default()
        };
        let body = create_body(&req).unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"_type": "lead", "lead_id": "lead_1", "text": "Follow up", "x": 1})
        );
    }

    #[test]
    fn update_sends_masked_fields_only_and_false_reopens() {
        let task = Task {
            id: "task_1".into(),
            text: "New text".into(),
            assigned_to: "user_2".into(),
            ..Default::default()
        };
        let update = Update {
            typed: typed_fields(&task).unwrap(),
            custom: None,
            extra: None,
        };
        let mask = FieldMask {
            paths: vec!["text".into(), "is_complete".into(), "date".into()],
        };
        let body = mask::patch(Some(&mask), &UPDATABLE, &update).unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"text": "New text", "is_complete": false, "date": null})
        );
        let custom = FieldMask {
            paths: vec!["custom.cf_1".into()],
        };
        assert!(mask::patch(Some(&custom), &UPDATABLE, &update).is_err());
    }

    #[test]
    fn words() {
        assert!(is_word("outgoing_call"));
        assert!(!is_word("lead&x=1"));
        assert!(!is_word(""));
    }
}
