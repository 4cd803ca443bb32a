//! Activities between Close's JSON and the typed messages: the table of activity types (enum,
//! Close's `_type`, URL segment, list filter name) and the create and update bodies.

use serde_json::{Map, Value};

use super::convert::put;
use super::convert::{format_timestamp, from_struct, take_string, take_timestamp, to_struct};
use super::mask::MaskSpec;
use crate::error::Error;
use crate::proto::close::v1::*;

/// One activity type as Close names it.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub ty: ActivityType,
    /// Close's `_type` in answers.
    pub close: &'static str,
    /// The segment of `/activity/<segment>/{id}/`.
    pub path: &'static str,
    /// The name `_type__in` takes: Close lists custom activities of any type as `Custom`.
    pub filter: &'static str,
}

const fn kind(
    ty: ActivityType,
    close: &'static str,
    path: &'static str,
    filter: &'static str,
) -> Kind {
    Kind {
        ty,
        close,
        path,
        filter,
    }
}

pub const KINDS: &[Kind] = &[
    kind(ActivityType::Email, "Email", "email", "Email"),
    kind(ActivityType::Note, "Note", "note", "Note"),
    kind(ActivityType::Call, "Call", "call", "Call"),
    kind(ActivityType::Sms, "SMS", "sms", "SMS"),
    kind(ActivityType::Meeting, "Meeting", "meeting", "Meeting"),
    kind(
        ActivityType::EmailThread,
        "EmailThread",
        "emailthread",
        "EmailThread",
    ),
    kind(ActivityType::Created, "Created", "created", "Created"),
    kind(
        ActivityType::TaskCompleted,
        "TaskCompleted",
        "task_completed",
        "TaskCompleted",
    ),
    kind(
        ActivityType::LeadStatusChange,
        "LeadStatusChange",
        "status_change/lead",
        "LeadStatusChange",
    ),
    kind(
        ActivityType::OpportunityStatusChange,
        "OpportunityStatusChange",
        "status_change/opportunity",
        "OpportunityStatusChange",
    ),
    kind(ActivityType::Custom, "CustomActivity", "custom", "Custom"),
    kind(
        ActivityType::WhatsappMessage,
        "WhatsAppMessage",
        "whatsapp_message",
        "WhatsAppMessage",
    ),
    kind(
        ActivityType::FormSubmission,
        "FormSubmission",
        "form_submission",
        "FormSubmission",
    ),
    kind(
        ActivityType::LeadMerge,
        "LeadMerge",
        "lead_merge",
        "LeadMerge",
    ),
];

/// The addressable kind of an enum value; `None` for UNSPECIFIED, OTHER and unknown numbers.
pub fn kind_of(ty: i32) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.ty as i32 == ty)
}

/// The enum value of Close's `_type`; a name we do not know is OTHER.
pub fn type_from_close(name: &str) -> ActivityType {
    KINDS
        .iter()
        .find(|k| k.close == name || k.filter == name)
        .map(|k| k.ty)
        .unwrap_or(ActivityType::Other)
}

/// The updatable fields: proto path → Close attribute. An SMS's `body_text` is Close's `text`,
/// renamed by [`sms_body`].
pub const UPDATABLE: MaskSpec = MaskSpec {
    fields: &[
        ("contact_id", "contact_id"),
        ("user_id", "user_id"),
        ("direction", "direction"),
        ("status", "status"),
        ("subject", "subject"),
        ("body_text", "body_text"),
        ("note", "note"),
        ("activity_at", "activity_at"),
    ],
    custom: false,
};

/// Close's activity JSON to the typed message. `_type` is kept in `extra` as well, so that an
/// OTHER activity still says what it is; `known` is the type when the answer omits `_type`.
pub fn activity_from_json(mut map: Map<String, Value>, known: ActivityType) -> Activity {
    let ty = match map.get("_type").and_then(Value::as_str) {
        Some(name) => type_from_close(name),
        None => known,
    };
    let body_key = if ty == ActivityType::Sms {
        "text"
    } else {
        "body_text"
    };
    Activity {
        id: take_string(&mut map, "id"),
        r#type: ty as i32,
        lead_id: take_string(&mut map, "lead_id"),
        contact_id: take_string(&mut map, "contact_id"),
        user_id: take_string(&mut map, "user_id"),
        direction: take_string(&mut map, "direction"),
        status: take_string(&mut map, "status"),
        subject: take_string(&mut map, "subject"),
        body_text: take_string(&mut map, body_key),
        note: take_string(&mut map, "note"),
        date_created: take_timestamp(&mut map, "date_created"),
        activity_at: take_timestamp(&mut map, "activity_at"),
        extra: Some(to_struct(map)),
    }
}

/// The updatable typed fields under Close's names; an absent key means "no value".
pub fn typed_fields(activity: &Activity) -> Result<Map<String, Value>, Error> {
    let mut map = Map::new();
    put(&mut map, "contact_id", &activity.contact_id);
    put(&mut map, "user_id", &activity.user_id);
    put(&mut map, "direction", &activity.direction);
    put(&mut map, "status", &activity.status);
    put(&mut map, "subject", &activity.subject);
    put(&mut map, "body_text", &activity.body_text);
    put(&mut map, "note", &activity.note);
    if let Some(at) = &activity.activity_at {
        let text = format_timestamp("activity.activity_at", at)?;
        map.insert("activity_at".into(), Value::String(text));
    }
    Ok(map)
}

/// An SMS keeps its text in `text`: renames the patch's `body_text`.
pub fn sms_body(mut body: Map<String, Value>) -> Map<String, Value> {
    if let Some(text) = body.remove("body_text") {
        body.insert("text".into(), text);
    }
    body
}

/// `extra` first, so that the validated typed fields win over it.
fn base(extra: Option<&prost_types::Struct>, lead_id: &str) -> Map<String, Value> {
    let mut map = extra.map(from_struct).unwrap_or_default();
    put(&mut map, "lead_id", lead_id);
    map
}

fn put_list(map: &mut Map<String, Value>, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let items = items.iter().cloned().map(Value::String).collect();
    map.insert(key.to_owned(), Value::Array(items));
}

pub fn email_body(req: &CreateEmailActivityRequest) -> Map<String, Value> {
    let mut map = base(req.extra.as_ref(), &req.lead_id);
    put(&mut map, "contact_id", &req.contact_id);
    put(&mut map, "direction", &req.direction);
    put(&mut map, "status", &req.status);
    put(&mut map, "subject", &req.subject);
    put(&mut map, "body_text", &req.body_text);
    put(&mut map, "body_html", &req.body_html);
    put(&mut map, "sender", &req.sender);
    put_list(&mut map, "to", &req.to);
    put_list(&mut map, "cc", &req.cc);
    put_list(&mut map, "bcc", &req.bcc);
    map
}

pub fn note_body(req: &CreateNoteActivityRequest) -> Map<String, Value> {
    let mut map = base(req.extra.as_ref(), &req.lead_id);
    put(&mut map, "note", &req.note);
    put(&mut map, "note_html", &req.note_html);
    put(&mut map, "contact_id", &req.contact_id);
    map
}

pub fn call_body(req: &CreateCallActivityRequest) -> Map<String, Value> {
    let mut map = base(req.extra.as_ref(), &req.lead_id);
    put(&mut map, "contact_id", &req.contact_id);
    put(&mut map, "direction", &req.direction);
    put(&mut map, "status", &req.status);
    if req.duration > 0 {
        map.insert("duration".into(), Value::from(req.duration));
    }
    put(&mut map, "phone", &req.phone);
    put(&mut map, "note", &req.note);
    map
}

pub fn sms_create_body(req: &CreateSmsActivityRequest) -> Map<String, Value> {
    let mut map = base(req.extra.as_ref(), &req.lead_id);
    put(&mut map, "contact_id", &req.contact_id);
    put(&mut map, "direction", &req.direction);
    put(&mut map, "status", &req.status);
    put(&mut map, "text", &req.text);
    put(&mut map, "local_phone", &req.local_phone);
    put(&mut map, "remote_phone", &req.remote_phone);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn every_type_maps_both_ways() {
        for k in KINDS {
            assert_eq!(kind_of(k.ty as i32), Some(k));
            assert_eq!(type_from_close(k.close), k.ty);
            assert_eq!(type_from_close(k.filter), k.ty);
        }
        // Every enum value but UNSPECIFIED and OTHER is in the table, once.
        assert_eq!(KINDS.len(), ActivityType::Other as usize - 1);
        assert_eq!(kind_of(ActivityType::Unspecified as i32), None);
        assert_eq!(kind_of(ActivityType::Other as i32), None);
        assert_eq!(kind_of(99), None);
        assert_eq!(type_from_close("Hologram"), ActivityType::Other);
        let path = |ty: ActivityType| kind_of(ty as i32).map(|k| k.path);
        assert_eq!(
            path(ActivityType::LeadStatusChange),
            Some("status_change/lead")
        );
        assert_eq!(
            path(ActivityType::WhatsappMessage),
            Some("whatsapp_message")
        );
        assert_eq!(path(ActivityType::Sms), Some("sms"));
        assert_eq!(type_from_close("SMS"), ActivityType::Sms);
    }

    #[test]
    fn email_json_to_typed_keeps_the_rest() {
        let a = activity_from_json(
            map(json!({
                "_type": "Email", "id": "acti_1", "lead_id": "lead_1", "contact_id": "cont_1",
                "user_id": "user_1", "direction": "outgoing", "status": "sent",
                "subject": "Hi", "body_text": "Hello", "body_html": "<p>Hello</p>",
                "date_created": "2018-09-17T17:40:44.085000+00:00",
                "activity_at": "2018-09-17T17:41:00+00:00", "to": ["a@x.com"]
            })),
            ActivityType::Unspecified,
        );
        assert_eq!(a.r#type, ActivityType::Email as i32);
        assert_eq!(
            (a.id.as_str(), a.lead_id.as_str(), a.contact_id.as_str()),
            ("acti_1", "lead_1", "cont_1")
        );
        assert_eq!(
            (a.user_id.as_str(), a.direction.as_str(), a.status.as_str()),
            ("user_1", "outgoing", "sent")
        );
        assert_eq!((a.subject.as_str(), a.body_text.as_str()), ("Hi", "Hello"));
        assert_eq!(a.date_created.unwrap().seconds, 1_537_206_044);
        assert_eq!(a.activity_at.unwrap().seconds, 1_537_206_060);
        assert_eq!(
            Value::Object(from_struct(&a.extra.unwrap())),
            json!({"_type": "Email", "body_html": "<p>Hello</p>", "to": ["a@x.com"]})
        );
    }

    #[test]
    fn sms_text_is_the_body_and_unknown_types_are_other() {
        let sms = activity_from_json(
            map(json!({"_type": "SMS", "id": "acti_2", "text": "On my way"})),
            ActivityType::Unspecified,
        );
        assert_eq!(sms.r#type, ActivityType::Sms as i32);
        assert_eq!(sms.body_text, "On my way");
        assert_eq!(
            Value::Object(from_struct(&sms.extra.unwrap())),
            json!({"_type": "SMS"})
        );
        let other = activity_from_json(
            map(json!({"_type": "Hologram", "id": "acti_3", "text": "?"})),
            ActivityType::Note,
        );
        assert_eq!(other.r#type, ActivityType::Other as i32);
        assert_eq!(
            Value::Object(from_struct(&other.extra.unwrap())),
            json!({"_type": "Hologram", "text": "?"})
        );
        let untyped = activity_from_json(map(json!({"id": "acti_4"})), ActivityType::Note);
        assert_eq!(untyped.r#type, ActivityType::Note as i32);
    }

    #[test]
    fn create_bodies_leave_out_empty_fields_and_typed_fields_win() {
        let email = CreateEmailActivityRequest {
            lead_id: "lead_1".into(),
            status: "sent".into(),
            subject: "Hi".into(),
            to: vec!["a@x.com".into()],
            extra: Some(to_struct(map(
                json!({"status": "inbox", "template_id": "tmpl_1"}),
            ))),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(email_body(&email)),
            json!({"lead_id": "lead_1", "status": "sent", "subject": "Hi", "to": ["a@x.com"],
                   "template_id": "tmpl_1"})
        );
        let call = CreateCallActivityRequest {
            lead_id: "lead_1".into(),
            direction: "outbound".into(),
            duration: 65,
            phone: "+15551234567".into(),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(call_body(&call)),
            json!({"lead_id": "lead_1", "direction": "outbound", "duration": 65,
                   "phone": "+15551234567"})
        );
        let note = CreateNoteActivityRequest {
            lead_id: "lead_1".into(),
            note_html: "<b>x</b>".into(),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(note_body(&note)),
            json!({"lead_id": "lead_1", "note_html": "<b>x</b>"})
        );
        let sms = CreateSmsActivityRequest {
            lead_id: "lead_1".into(),
            status: "sent".into(),
            text: "Hi".into(),
            remote_phone: "+15550000000".into(),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(sms_create_body(&sms)),
            json!({"lead_id": "lead_1", "status": "sent", "text": "Hi",
                   "remote_phone": "+15550000000"})
        );
    }

    #[test]
    fn update_typed_fields_and_sms_rename() {
        let a = Activity {
            id: "acti_1".into(),
            body_text: "new".into(),
            activity_at: Some(prost_types::Timestamp {
                seconds: 1_537_206_060,
                nanos: 0,
            }),
            ..Default::default()
        };
        let typed = typed_fields(&a).unwrap();
        assert_eq!(
            Value::Object(typed.clone()),
            json!({"body_text": "new", "activity_at": "2018-09-17T17:41:00.000000+00:00"})
        );
        assert_eq!(
            Value::Object(sms_body(typed)),
            json!({"text": "new", "activity_at": "2018-09-17T17:41:00.000000+00:00"})
        );
    }
}
