//! The endpoint groups the benchmark loads, and the one call it makes in each: as a gRPC
//! call through the gateway, and as the same HTTP request straight to Close (the emulator).
//! Every call touches the emulator's sample data, so none fails for want of an object.

use std::fmt;
use std::time::Duration;

use prost_types::FieldMask;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::emulator::DEV_LEAD_ID;
use crate::proto::close::v1::activity_service_client::ActivityServiceClient;
use crate::proto::close::v1::lead_service_client::LeadServiceClient;
use crate::proto::close::v1::search_service_client::SearchServiceClient;
use crate::proto::close::v1::task_service_client::TaskServiceClient;
use crate::proto::close::v1::{
    CreateNoteActivityRequest, GetLeadRequest, GetTaskRequest, Lead, ListActivitiesRequest,
    SearchRequest, UpdateLeadRequest,
};
use crate::services::convert::to_struct;

/// A task of the emulator's sample data.
const DEV_TASK_ID: &str = "task_dev1CallWile";

/// An endpoint group as the emulator defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    LeadRead,
    LeadWrite,
    TaskRead,
    ActivityRead,
    ActivityWrite,
    Search,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::LeadRead => "lead_read",
            Group::LeadWrite => "lead_write",
            Group::TaskRead => "task_read",
            Group::ActivityRead => "activity_read",
            Group::ActivityWrite => "activity_write",
            Group::Search => "search",
        }
    }

    /// The group the gateway's built-in table puts this call in.
    pub fn gateway_name(self) -> &'static str {
        match self {
            Group::LeadRead => "lead.read",
            Group::LeadWrite => "lead.write",
            Group::TaskRead => "task.read",
            Group::ActivityRead => "activity.read",
            Group::ActivityWrite => "activity.write",
            Group::Search => "search",
        }
    }

    /// The emulator bucket the group counts against (the three write groups share one).
    pub fn bucket(self) -> &'static str {
        match self {
            // Task writes would count here too; no scenario loads them.
            Group::LeadWrite | Group::ActivityWrite => "write",
            other => other.name(),
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Call priority, sent as `x-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    pub fn parse(text: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// One caller's typed clients, all on the caller's own connection to one replica.
#[derive(Clone)]
pub struct Clients {
    leads: LeadServiceClient<Channel>,
    tasks: TaskServiceClient<Channel>,
    activities: ActivityServiceClient<Channel>,
    search: SearchServiceClient<Channel>,
}

impl Clients {
    pub fn new(channel: Channel) -> Self {
        Clients {
            leads: LeadServiceClient::new(channel.clone()),
            tasks: TaskServiceClient::new(channel.clone()),
            activities: ActivityServiceClient::new(channel.clone()),
            search: SearchServiceClient::new(channel),
        }
    }
}

/// Who is calling, and for how long it will wait.
#[derive(Debug, Clone)]
pub struct CallMeta {
    pub caller: String,
    pub priority: Priority,
    pub timeout: Duration,
}

fn request<T>(message: T, meta: &CallMeta) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(meta.timeout);
    let md = req.metadata_mut();
    md.insert(
        "x-priority",
        MetadataValue::from_static(meta.priority.as_str()),
    );
    if let Ok(caller) = meta.caller.parse() {
        md.insert("x-caller", caller);
    }
    req
}

fn mask(path: &str) -> Option<FieldMask> {
    Some(FieldMask {
        paths: vec![path.to_owned()],
    })
}

fn search_query() -> Value {
    json!({"type": "object_type", "object_type": "lead"})
}

fn as_struct(value: Value) -> Option<prost_types::Struct> {
    match value {
        Value::Object(map) => Some(to_struct(map)),
        _ => None,
    }
}

/// The group's call through the gateway; `seq` makes write bodies distinct.
pub async fn grpc_call(
    clients: &mut Clients,
    group: Group,
    seq: u64,
    meta: &CallMeta,
) -> Result<(), tonic::Status> {
    let text = format!("bench call {seq}");
    match group {
        Group::LeadRead => {
            let msg = GetLeadRequest {
                id: DEV_LEAD_ID.to_owned(),
            };
            clients.leads.get_lead(request(msg, meta)).await?;
        }
        Group::LeadWrite => {
            let lead = Lead {
                id: DEV_LEAD_ID.to_owned(),
                description: text,
                ..Lead::default()
            };
            let msg = UpdateLeadRequest {
                lead: Some(lead),
                update_mask: mask("description"),
            };
            clients.leads.update_lead(request(msg, meta)).await?;
        }
        Group::TaskRead => {
            let msg = GetTaskRequest {
                id: DEV_TASK_ID.to_owned(),
            };
            clients.tasks.get_task(request(msg, meta)).await?;
        }
        Group::ActivityRead => {
            let msg = ListActivitiesRequest {
                lead_id: DEV_LEAD_ID.to_owned(),
                page_size: 1,
                ..ListActivitiesRequest::default()
            };
            clients
                .activities
                .list_activities(request(msg, meta))
                .await?;
        }
        Group::ActivityWrite => {
            let msg = CreateNoteActivityRequest {
                lead_id: DEV_LEAD_ID.to_owned(),
                note: text,
                ..CreateNoteActivityRequest::default()
            };
            clients
                .activities
                .create_note_activity(request(msg, meta))
                .await?;
        }
        Group::Search => {
            let msg = SearchRequest {
                query: as_struct(search_query()),
                page_size: 1,
                ..SearchRequest::default()
            };
            clients.search.search(request(msg, meta)).await?;
        }
    }
    Ok(())
}

/// The same request as [`grpc_call`] sends upstream: method, path below the base URL,
/// query and body.
pub fn http_request(
    group: Group,
    seq: u64,
) -> (Method, String, Vec<(&'static str, String)>, Option<Value>) {
    let text = format!("bench call {seq}");
    let lead = format!("/lead/{DEV_LEAD_ID}/");
    let task = format!("/task/{DEV_TASK_ID}/");
    match group {
        Group::LeadRead => (Method::GET, lead, vec![], None),
        Group::LeadWrite => (
            Method::PUT,
            lead,
            vec![],
            Some(json!({"description": text})),
        ),
        Group::TaskRead => (Method::GET, task, vec![], None),
        Group::ActivityRead => {
            let query = vec![
                ("lead_id", DEV_LEAD_ID.to_owned()),
                ("_limit", "1".to_owned()),
            ];
            (Method::GET, "/activity/".to_owned(), query, None)
        }
        Group::ActivityWrite => {
            let body = json!({"lead_id": DEV_LEAD_ID, "note": text});
            (
                Method::POST,
                "/activity/note/".to_owned(),
                vec![],
                Some(body),
            )
        }
        Group::Search => {
            let body = json!({"query": search_query(), "_limit": 1});
            (Method::POST, "/data/search/".to_owned(), vec![], Some(body))
        }
    }
}
