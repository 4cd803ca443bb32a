//! ActivityService: a lead's timeline (`/activity/`): list, get, log emails, notes, calls and
//! SMS, update and delete. Conversions live in `activity_convert`.

use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use super::activity_convert::{
    Kind, UPDATABLE, activity_from_json, call_body, email_body, kind_of, note_body, sms_body,
    sms_create_body, type_from_close, typed_fields,
};
use super::convert::{bad_response, decode_page_token, list_page, object, page_limit};
use super::mask::{self, Update};
use super::validate::{MAX_SHORT_LEN, MAX_TEXT_LEN, Violations};
use super::{Gateway, context};
use crate::close::ratelimit::RateLimitInfo;
use crate::close::{CallContext, CloseError, CloseRequest};
use crate::error::{Error, invalid};
use crate::proto::close::v1::activity_service_server::ActivityService as Api;
use crate::proto::close::v1::*;

const EMAIL_STATUSES: &[&str] = &["inbox", "draft", "scheduled", "outbox", "sent", "error"];
/// Email statuses for which Close needs a `sender`.
const EMAIL_NEEDS_SENDER: &[&str] = &["inbox", "scheduled", "outbox", "error"];
const EMAIL_DIRECTIONS: &[&str] = &["incoming", "outgoing"];
const SMS_STATUSES: &[&str] = &["inbox", "draft", "scheduled", "outbox", "sent"];
const CALL_SMS_DIRECTIONS: &[&str] = &["inbound", "outbound"];
/// Bound on recipients of one email.
const MAX_RECIPIENTS: usize = 1000;

pub struct ActivityService {
    gateway: Gateway,
}

impl ActivityService {
    pub fn new(gateway: Gateway) -> Self {
        ActivityService { gateway }
    }

    async fn send(&self, upstream: CloseRequest, ctx: &CallContext) -> Result<Value, Error> {
        Ok(self.gateway.client.json(&upstream, ctx).await?)
    }

    /// The kind named by the request, or, when unspecified, the one Close reports for `id`:
    /// a single `GET /activity/?id__in=<id>&_fields=id,_type`.
    async fn resolve(&self, id: &str, ty: i32, ctx: &CallContext) -> Result<&'static Kind, Error> {
        if ty != ActivityType::Unspecified as i32 {
            return kind_of(ty).ok_or_else(|| invalid("type", TYPE_RULE));
        }
        let upstream = CloseRequest::get("/activity/")
            .query("id__in", id)
            .query("_fields", "id,_type");
        let body = self.send(upstream, ctx).await?;
        let (found, _) = list_page(body, 0)?;
        let Some(item) = found
            .iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(id))
        else {
            return Err(not_found(id));
        };
        let Some(name) = item.get("_type").and_then(Value::as_str) else {
            return Err(bad_response("activity lookup answer has no _type"));
        };
        let kind = kind_of(type_from_close(name) as i32);
        tracing::debug!(id, close_type = name, "resolved activity type");
        kind.ok_or_else(|| {
            invalid(
                "id",
                format!(
                    "is a \"{name}\" activity, a type this gateway cannot address; use RawService"
                ),
            )
        })
    }

    async fn create(
        &self,
        path: &str,
        body: serde_json::Map<String, Value>,
        known: ActivityType,
        ctx: &CallContext,
    ) -> Result<Activity, Error> {
        // A POST: never retried, a lost answer is OUTCOME_UNKNOWN (see crate::error).
        let upstream = CloseRequest::post(format!("/activity/{path}/"), Value::Object(body));
        let created = self.send(upstream, ctx).await?;
        Ok(activity_from_json(object(created)?, known))
    }
}

const TYPE_RULE: &str = "must be a specific activity type, or UNSPECIFIED to look it up";

/// Close answers an unknown id in a list with an empty page: the same NOT_FOUND as its 404.
fn not_found(id: &str) -> Error {
    let body = json!({"error": format!("activity {id} does not exist")});
    Error::Close(CloseError::from_status(
        http::Method::GET,
        "/activity/",
        404,
        &body,
        RateLimitInfo::default(),
    ))
}

#[tonic::async_trait]
impl Api for ActivityService {
    async fn list_activities(
        &self,
        request: Request<ListActivitiesRequest>,
    ) -> Result<Response<ListActivitiesResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let limit = page_limit(req.page_size, 100, 100)?;
        let skip = decode_page_token(&req.page_token)?;
        let mut v = Violations::new();
        v.optional_id("lead_id", &req.lead_id, "lead_");
        v.optional_id("contact_id", &req.contact_id, "cont_");
        v.optional_id("user_id", &req.user_id, "user_");
        // Close applies these filters only to the activities of a single lead.
        let single_lead = [
            ("types", !req.types.is_empty()),
            ("contact_id", !req.contact_id.is_empty()),
            ("user_id", !req.user_id.is_empty()),
        ];
        for (field, given) in single_lead {
            if given && req.lead_id.is_empty() {
                v.add(
                    field,
                    "needs lead_id: Close filters by it only within one lead",
                );
            }
        }
        let mut filters = Vec::new();
        for (i, ty) in req.types.iter().enumerate() {
            match kind_of(*ty) {
                Some(kind) => filters.push(kind.filter),
                None => v.add(&format!("types[{i}]"), "must be a specific activity type"),
            }
        }
        v.finish()?;
        let mut upstream = CloseRequest::get("/activity/")
            .query("_skip", skip.to_string())
            .query("_limit", limit.to_string());
        let params = [
            ("lead_id", req.lead_id),
            ("_type__in", filters.join(",")),
            ("contact_id", req.contact_id),
            ("user_id", req.user_id),
        ];
        for (key, value) in params {
            if !value.is_empty() {
                upstream = upstream.query(key, value);
            }
        }
        let body = self.send(upstream, &ctx).await?;
        let (objects, next_page_token) = list_page(body, skip)?;
        let activities = objects
            .into_iter()
            .map(|m| activity_from_json(m, ActivityType::Unspecified))
            .collect();
        Ok(Response::new(ListActivitiesResponse {
            activities,
            next_page_token,
        }))
    }

    async fn get_activity(
        &self,
        request: Request<GetActivityRequest>,
    ) -> Result<Response<GetActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check_target(&mut v, "", &req.id, req.r#type);
        v.finish()?;
        let kind = self.resolve(&req.id, req.r#type, &ctx).await?;
        let upstream = CloseRequest::get(format!("/activity/{}/{}/", kind.path, req.id));
        let body = self.send(upstream, &ctx).await?;
        let activity = activity_from_json(object(body)?, kind.ty);
        Ok(Response::new(GetActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn create_email_activity(
        &self,
        request: Request<CreateEmailActivityRequest>,
    ) -> Result<Response<CreateEmailActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id, "lead_");
        v.optional_id("contact_id", &req.contact_id, "cont_");
        v.one_of("direction", &req.direction, EMAIL_DIRECTIONS, true);
        if req.status.is_empty() {
            v.add("status", "is required");
        } else {
            v.one_of("status", &req.status, EMAIL_STATUSES, false);
        }
        if EMAIL_NEEDS_SENDER.contains(&req.status.as_str()) {
            v.required("sender", &req.sender);
        }
        v.max_len("sender", &req.sender, MAX_SHORT_LEN);
        v.max_len("subject", &req.subject, MAX_SHORT_LEN);
        v.max_len("body_text", &req.body_text, MAX_TEXT_LEN);
        v.max_len("body_html", &req.body_html, MAX_TEXT_LEN);
        for (field, list) in [("to", &req.to), ("cc", &req.cc), ("bcc", &req.bcc)] {
            if list.len() > MAX_RECIPIENTS {
                v.add(field, format!("has more than {MAX_RECIPIENTS} recipients"));
            }
            for (i, address) in list.iter().enumerate() {
                v.max_len(&format!("{field}[{i}]"), address, MAX_SHORT_LEN);
            }
        }
        v.finish()?;
        let activity = self
            .create("email", email_body(&req), ActivityType::Email, &ctx)
            .await?;
        Ok(Response::new(CreateEmailActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn create_note_activity(
        &self,
        request: Request<CreateNoteActivityRequest>,
    ) -> Result<Response<CreateNoteActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id, "lead_");
        v.optional_id("contact_id", &req.contact_id, "cont_");
        if req.note.trim().is_empty() && req.note_html.trim().is_empty() {
            v.add("note", "is required unless note_html is given");
        }
        v.max_len("note", &req.note, MAX_TEXT_LEN);
        v.max_len("note_html", &req.note_html, MAX_TEXT_LEN);
        v.finish()?;
        let activity = self
            .create("note", note_body(&req), ActivityType::Note, &ctx)
            .await?;
        Ok(Response::new(CreateNoteActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn create_call_activity(
        &self,
        request: Request<CreateCallActivityRequest>,
    ) -> Result<Response<CreateCallActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id, "lead_");
        v.optional_id("contact_id", &req.contact_id, "cont_");
        v.one_of("direction", &req.direction, CALL_SMS_DIRECTIONS, true);
        v.max_len("status", &req.status, MAX_SHORT_LEN);
        if req.duration < 0 {
            v.add("duration", "must not be negative");
        }
        v.max_len("phone", &req.phone, MAX_SHORT_LEN);
        v.max_len("note", &req.note, MAX_TEXT_LEN);
        v.finish()?;
        let activity = self
            .create("call", call_body(&req), ActivityType::Call, &ctx)
            .await?;
        Ok(Response::new(CreateCallActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn create_sms_activity(
        &self,
        request: Request<CreateSmsActivityRequest>,
    ) -> Result<Response<CreateSmsActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id, "lead_");
        v.optional_id("contact_id", &req.contact_id, "cont_");
        v.one_of("direction", &req.direction, CALL_SMS_DIRECTIONS, true);
        if req.status.is_empty() {
            v.add("status", "is required");
        } else {
            v.one_of("status", &req.status, SMS_STATUSES, false);
        }
        // Close renders an SMS template in place of the text.
        let template = req
            .extra
            .as_ref()
            .is_some_and(|e| e.fields.contains_key("template_id"));
        if !template {
            v.required("text", &req.text);
        }
        v.max_len("text", &req.text, MAX_TEXT_LEN);
        v.max_len("local_phone", &req.local_phone, MAX_SHORT_LEN);
        v.max_len("remote_phone", &req.remote_phone, MAX_SHORT_LEN);
        v.finish()?;
        let activity = self
            .create("sms", sms_create_body(&req), ActivityType::Sms, &ctx)
            .await?;
        Ok(Response::new(CreateSmsActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn update_activity(
        &self,
        request: Request<UpdateActivityRequest>,
    ) -> Result<Response<UpdateActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let activity = req.activity.unwrap_or_default();
        let mut v = Violations::new();
        check_target(&mut v, "activity.", &activity.id, activity.r#type);
        v.optional_id("activity.contact_id", &activity.contact_id, "cont_");
        v.optional_id("activity.user_id", &activity.user_id, "user_");
        v.max_len("activity.direction", &activity.direction, MAX_SHORT_LEN);
        v.max_len("activity.status", &activity.status, MAX_SHORT_LEN);
        v.max_len("activity.subject", &activity.subject, MAX_SHORT_LEN);
        v.max_len("activity.body_text", &activity.body_text, MAX_TEXT_LEN);
        v.max_len("activity.note", &activity.note, MAX_TEXT_LEN);
        v.finish()?;
        let update = Update {
            typed: typed_fields(&activity)?,
            custom: None,
            extra: activity.extra.as_ref(),
        };
        // Checked before the type lookup, so that a bad mask sends nothing.
        let mut body = mask::patch(req.update_mask.as_ref(), &UPDATABLE, &update)?;
        let kind = self.resolve(&activity.id, activity.r#type, &ctx).await?;
        if kind.ty == ActivityType::Sms {
            body = sms_body(body);
        }
        let path = format!("/activity/{}/{}/", kind.path, activity.id);
        let updated = self
            .send(CloseRequest::put(path, Value::Object(body)), &ctx)
            .await?;
        let activity = activity_from_json(object(updated)?, kind.ty);
        Ok(Response::new(UpdateActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn delete_activity(
        &self,
        request: Request<DeleteActivityRequest>,
    ) -> Result<Response<DeleteActivityResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check_target(&mut v, "", &req.id, req.r#type);
        v.finish()?;
        let kind = self.resolve(&req.id, req.r#type, &ctx).await?;
        let path = format!("/activity/{}/{}/", kind.path, req.id);
        self.send(CloseRequest::delete(path), &ctx).await?;
        Ok(Response::new(DeleteActivityResponse {}))
    }
}

/// The id and type of Get / Update / Delete (fields under `prefix`): a type is a specific one
/// or UNSPECIFIED.
fn check_target(v: &mut Violations, prefix: &str, id: &str, ty: i32) {
    v.id(&format!("{prefix}id"), id, "acti_");
    if ty != ActivityType::Unspecified as i32 && kind_of(ty).is_none() {
        v.add(&format!("{prefix}type"), TYPE_RULE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::activity_convert::KINDS;

    fn target(prefix: &str, id: &str, ty: i32) -> Vec<String> {
        let mut v = Violations::new();
        check_target(&mut v, prefix, id, ty);
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn targets_need_an_acti_id_and_an_addressable_type() {
        assert!(target("", "acti_1", ActivityType::Unspecified as i32).is_empty());
        assert!(target("", "acti_1", ActivityType::Call as i32).is_empty());
        assert_eq!(target("", "acti_1", ActivityType::Other as i32), ["type"]);
        assert_eq!(
            target("activity.", "lead_1", 42),
            ["activity.id", "activity.type"]
        );
    }

    #[test]
    fn every_kind_has_a_distinct_path() {
        for (i, a) in KINDS.iter().enumerate() {
            for b in &KINDS[i + 1..] {
                assert_ne!(a.path, b.path);
                assert_ne!(a.close, b.close);
            }
        }
    }
}
