//! LeadService: leads (`/lead/`) with typed fields, custom fields and everything else kept.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};

use super::convert::{
    decode_page_token, from_pb_value, from_struct, list_page, object, page_limit, put, take_string,
    take_timestamp, to_pb_value, to_struct,
};
use super::mask::{self, MaskSpec, Update};
use super::validate::{MAX_SHORT_LEN, MAX_TEXT_LEN, Violations, check_id};
use super::{Gateway, context};
use crate::close::CloseRequest;
use crate::error::Error;
use crate::proto::close::v1::lead_service_server::LeadService as LeadApi;
use crate::proto::close::v1::*;

const UPDATABLE: MaskSpec = MaskSpec {
    fields: &[
        ("name", "name"),
        ("description", "description"),
        ("url", "url"),
        ("status_id", "status_id"),
        ("status_label", "status_label"),
        ("addresses", "addresses"),
    ],
    custom: true,
};

pub struct LeadService {
    gateway: Gateway,
}

impl LeadService {
    pub fn new(gateway: Gateway) -> Self {
        LeadService { gateway }
    }
}

#[tonic::async_trait]
impl LeadApi for LeadService {
    async fn get_lead(
        &self,
        request: Request<GetLeadRequest>,
    ) -> Result<Response<GetLeadResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        check_id("id", &req.id, "lead_")?;
        let upstream = CloseRequest::get(format!("/lead/{}/", req.id));
        let body = self
            .gateway
            .client
            .json(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        let lead = lead_from_json(object(body)?);
        Ok(Response::new(GetLeadResponse { lead: Some(lead) }))
    }

    async fn list_leads(
        &self,
        request: Request<ListLeadsRequest>,
    ) -> Result<Response<ListLeadsResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let limit = page_limit(req.page_size, 100, 200)?;
        let skip = decode_page_token(&req.page_token)?;
        let mut v = Violations::new();
        v.max_len("query", &req.query, MAX_SHORT_LEN);
        v.finish()?;
        let mut upstream = CloseRequest::get("/lead/")
            .query("_skip", skip.to_string())
            .query("_limit", limit.to_string());
        if !req.query.is_empty() {
            upstream = upstream.query("query", req.query);
        }
        let body = self
            .gateway
            .client
            .json(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        let (objects, next_page_token) = list_page(body, skip)?;
        let leads = objects.into_iter().map(lead_from_json).collect();
        Ok(Response::new(ListLeadsResponse {
            leads,
            next_page_token,
        }))
    }

    async fn create_lead(
        &self,
        request: Request<CreateLeadRequest>,
    ) -> Result<Response<CreateLeadResponse>, Status> {
        let ctx = context(request.metadata())?;
        let lead = request.into_inner().lead.unwrap_or_default();
        let mut v = Violations::new();
        v.max_len("lead.name", &lead.name, MAX_SHORT_LEN);
        v.max_len("lead.description", &lead.description, MAX_TEXT_LEN);
        v.optional_id("lead.status_id", &lead.status_id, "stat_");
        for (i, contact) in lead.contacts.iter().enumerate() {
            v.max_len(
                &format!("lead.contacts[{i}].name"),
                &contact.name,
                MAX_SHORT_LEN,
            );
        }
        check_custom_keys(&mut v, "lead.custom", &lead.custom);
        v.finish()?;
        let body = lead_to_json(&lead);
        let upstream = CloseRequest::post("/lead/", Value::Object(body));
        let created = self
            .gateway
            .client
            .json(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        let lead = lead_from_json(object(created)?);
        Ok(Response::new(CreateLeadResponse { lead: Some(lead) }))
    }

    async fn update_lead(
        &self,
        request: Request<UpdateLeadRequest>,
    ) -> Result<Response<UpdateLeadResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let lead = req.lead.unwrap_or_default();
        check_id("lead.id", &lead.id, "lead_")?;
        let mut v = Violations::new();
        v.max_len("lead.name", &lead.name, MAX_SHORT_LEN);
        v.max_len("lead.description", &lead.description, MAX_TEXT_LEN);
        v.optional_id("lead.status_id", &lead.status_id, "stat_");
        v.finish()?;
        let update = Update {
            typed: lead_to_json(&Lead {
                custom: HashMap::new(),
                extra: None,
                contacts: Vec::new(),
                ..lead.clone()
            }),
            custom: Some(&lead.custom),
            extra: lead.extra.as_ref(),
        };
        let body = mask::patch(req.update_mask.as_ref(), &UPDATABLE, &update)?;
        let upstream = CloseRequest::put(format!("/lead/{}/", lead.id), Value::Object(body));
        let updated = self
            .gateway
            .client
            .json(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        let lead = lead_from_json(object(updated)?);
        Ok(Response::new(UpdateLeadResponse { lead: Some(lead) }))
    }

    async fn delete_lead(
        &self,
        request: Request<DeleteLeadRequest>,
    ) -> Result<Response<DeleteLeadResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        check_id("id", &req.id, "lead_")?;
        let upstream = CloseRequest::delete(format!("/lead/{}/", req.id));
        self.gateway
            .client
            .json(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(DeleteLeadResponse {}))
    }

    async fn merge_leads(
        &self,
        request: Request<MergeLeadsRequest>,
    ) -> Result<Response<MergeLeadsResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("source_id", &req.source_id, "lead_");
        v.id("destination_id", &req.destination_id, "lead_");
        if !req.source_id.is_empty() && req.source_id == req.destination_id {
            v.add("destination_id", "must differ from source_id");
        }
        v.finish()?;
        let body = json!({"source": req.source_id, "destination": req.destination_id});
        let upstream = CloseRequest::post("/lead/merge/", body);
        let result = self
            .gateway
            .client
            .json(&upstream, &ctx)
            .await
            .map_err(Error::from)?;
        let result = match result {
            Value::Object(map) => Some(to_struct(map)),
            _ => None,
        };
        Ok(Response::new(MergeLeadsResponse {
            destination_id: req.destination_id,
            result,
        }))
    }
}

fn check_custom_keys(
    v: &mut Violations,
    field: &str,
    custom: &HashMap<String, prost_types::Value>,
) {
    for key in custom.keys() {
        v.optional_id(&format!("{field}[{key}]"), key, "cf_");
    }
}

/// Close's lead JSON to the typed message. Typed attributes are moved out; what remains is
/// `extra`, so nothing Close returned is lost.
pub fn lead_from_json(mut map: Map<String, Value>) -> Lead {
    let mut custom = HashMap::new();
    if let Some(Value::Object(fields)) = map.remove("custom") {
        for (key, value) in fields {
            custom.insert(key, to_pb_value(value));
        }
    }
    // Close also returns each custom field flat, as "custom.cf_...": same values.
    let flat: Vec<String> = map
        .keys()
        .filter(|k| k.starts_with("custom."))
        .cloned()
        .collect();
    for key in flat {
        if let Some(value) = map.remove(&key) {
            let id = key.trim_start_matches("custom.").to_owned();
            custom.entry(id).or_insert_with(|| to_pb_value(value));
        }
    }
    let contacts = match map.remove("contacts") {
        Some(Value::Array(items)) => items.into_iter().filter_map(contact_from_json).collect(),
        Some(other) => {
            map.insert("contacts".into(), other);
            Vec::new()
        }
        None => Vec::new(),
    };
    let addresses = match map.remove("addresses") {
        Some(Value::Array(items)) => items.into_iter().filter_map(address_from_json).collect(),
        Some(other) => {
            map.insert("addresses".into(), other);
            Vec::new()
        }
        None => Vec::new(),
    };
    Lead {
        id: take_string(&mut map, "id"),
        name: take_string(&mut map, "name"),
        display_name: take_string(&mut map, "display_name"),
        status_id: take_string(&mut map, "status_id"),
        status_label: take_string(&mut map, "status_label"),
        description: take_string(&mut map, "description"),
        url: take_string(&mut map, "url"),
        contacts,
        addresses,
        date_created: take_timestamp(&mut map, "date_created"),
        date_updated: take_timestamp(&mut map, "date_updated"),
        custom,
        extra: Some(to_struct(map)),
    }
}

fn contact_from_json(value: Value) -> Option<Contact> {
    let Value::Object(mut map) = value else {
        return None;
    };
    let emails = take_list(&mut map, "emails", |mut m| ContactEmail {
        email: take_string(&mut m, "email"),
        r#type: take_string(&mut m, "type"),
        extra: Some(to_struct(m)),
    });
    let phones = take_list(&mut map, "phones", |mut m| ContactPhone {
        phone: take_string(&mut m, "phone"),
        r#type: take_string(&mut m, "type"),
        extra: Some(to_struct(m)),
    });
    Some(Contact {
        id: take_string(&mut map, "id"),
        name: take_string(&mut map, "name"),
        title: take_string(&mut map, "title"),
        emails,
        phones,
        extra: Some(to_struct(map)),
    })
}

fn take_list<T>(
    map: &mut Map<String, Value>,
    key: &str,
    convert: impl Fn(Map<String, Value>) -> T,
) -> Vec<T> {
    let Some(Value::Array(items)) = map.remove(key) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::Object(m) => Some(convert(m)),
            _ => None,
        })
        .collect()
}

fn address_from_json(value: Value) -> Option<Address> {
    let Value::Object(mut map) = value else {
        return None;
    };
    Some(Address {
        label: take_string(&mut map, "label"),
        address_1: take_string(&mut map, "address_1"),
        address_2: take_string(&mut map, "address_2"),
        city: take_string(&mut map, "city"),
        state: take_string(&mut map, "state"),
        zipcode: take_string(&mut map, "zipcode"),
        country: take_string(&mut map, "country"),
        extra: Some(to_struct(map)),
    })
}

/// The typed message to Close's JSON for create (and, field by field, for update). Empty
/// strings are left out: proto3 cannot tell them from "not set".
pub fn lead_to_json(lead: &Lead) -> Map<String, Value> {
    let mut map = lead.extra.as_ref().map(from_struct).unwrap_or_default();
    put(&mut map, "name", &lead.name);
    put(&mut map, "status_id", &lead.status_id);
    put(&mut map, "status_label", &lead.status_label);
    put(&mut map, "description", &lead.description);
    put(&mut map, "url", &lead.url);
    if !lead.contacts.is_empty() {
        let contacts = lead.contacts.iter().map(contact_to_json).collect();
        map.insert("contacts".into(), Value::Array(contacts));
    }
    if !lead.addresses.is_empty() {
        let addresses = lead.addresses.iter().map(address_to_json).collect();
        map.insert("addresses".into(), Value::Array(addresses));
    }
    for (id, value) in &lead.custom {
        map.insert(format!("custom.{id}"), from_pb_value(value));
    }
    map
}

fn contact_to_json(contact: &Contact) -> Value {
    let mut map = contact.extra.as_ref().map(from_struct).unwrap_or_default();
    put(&mut map, "name", &contact.name);
    put(&mut map, "title", &contact.title);
    let emails: Vec<Value> = contact
        .emails
        .iter()
        .map(|e| {
            let mut m = e.extra.as_ref().map(from_struct).unwrap_or_default();
            put(&mut m, "email", &e.email);
            put(&mut m, "type", &e.r#type);
            Value::Object(m)
        })
        .collect();
    let phones: Vec<Value> = contact
        .phones
        .iter()
        .map(|p| {
            let mut m = p.extra.as_ref().map(from_struct).unwrap_or_default();
            put(&mut m, "phone", &p.phone);
            put(&mut m, "type", &p.r#type);
            Value::Object(m)
        })
        .collect();
    if !emails.is_empty() {
        map.insert("emails".into(), Value::Array(emails));
    }
    if !phones.is_empty() {
        map.insert("phones".into(), Value::Array(phones));
    }
    Value::Object(map)
}

fn address_to_json(address: &Address) -> Value {
    let mut map = address.extra.as_ref().map(from_struct).unwrap_or_default();
    put(&mut map, "label", &address.label);
    put(&mut map, "address_1", &address.address_1);
    put(&mut map, "address_2", &address.address_2);
    put(&mut map, "city", &address.city);
    put(&mut map, "state", &address.state);
    put(&mut map, "zipcode", &address.zipcode);
    put(&mut map, "country", &address.country);
    Value::Object(map)
}
