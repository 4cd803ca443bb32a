//! LeadService end to end: tonic client → gateway → HTTP → emulator.

mod common;

use close_gateway::proto::close::v1::*;
use prost_types::{FieldMask, Value as PbValue, value::Kind};
use serde_json::json;
use tonic::Code;

fn text(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

async fn create_acme(gw: &common::TestGateway) -> Lead {
    let lead = Lead {
        name: "Acme".into(),
        description: "anvils".into(),
        url: "https://acme.example".into(),
        contacts: vec![Contact {
            name: "Wile E.".into(),
            title: "CEO".into(),
            emails: vec![ContactEmail {
                email: "wile@acme.example".into(),
                r#type: "office".into(),
                extra: None,
            }],
            ..Default::default()
        }],
        custom: [("cf_tier".to_owned(), text("gold"))].into(),
        ..Default::default()
    };
    gw.leads()
        .create_lead(CreateLeadRequest { lead: Some(lead) })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
}

#[tokio::test]
async fn create_sends_close_shapes_and_returns_typed_lead() {
    let gw = common::start().await;
    let lead = create_acme(&gw).await;

    assert!(lead.id.starts_with("lead_"), "{}", lead.id);
    assert_eq!(lead.name, "Acme");
    assert_eq!(lead.contacts.len(), 1);
    assert!(lead.contacts[0].id.starts_with("cont_"));
    assert_eq!(lead.contacts[0].emails[0].email, "wile@acme.example");
    assert_eq!(lead.custom.get("cf_tier"), Some(&text("gold")));
    assert!(lead.date_created.is_some());

    let sent = gw.last();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/api/v1/lead/");
    let body = sent.body.unwrap();
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["custom.cf_tier"], "gold");
    assert_eq!(
        body["contacts"][0]["emails"][0]["email"],
        "wile@acme.example"
    );
    assert_eq!(sent.api_key.as_deref(), Some(common::TEST_KEY));
}

#[tokio::test]
async fn get_returns_every_attribute() {
    let gw = common::start().await;
    let id = gw.emulator.insert_lead(json!({
        "name": "Globex",
        "custom": {"cf_size": 40},
        "some_new_attribute": {"nested": true},
    }));
    let lead = gw
        .leads()
        .get_lead(GetLeadRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(lead.id, id);
    assert_eq!(lead.name, "Globex");
    let size = lead.custom.get("cf_size").and_then(|v| v.kind.clone());
    assert_eq!(size, Some(Kind::NumberValue(40.0)));
    let extra = lead.extra.unwrap();
    assert!(extra.fields.contains_key("some_new_attribute"), "{extra:?}");
    assert!(!extra.fields.contains_key("name"));

    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", format!("/api/v1/lead/{id}/").as_str())
    );
}

#[tokio::test]
async fn get_unknown_lead_is_not_found() {
    let gw = common::start().await;
    let status = gw
        .leads()
        .get_lead(GetLeadRequest {
            id: "lead_doesnotexist".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(common::reason(&status), "NOT_FOUND");
}

#[tokio::test]
async fn update_sends_only_masked_fields() {
    let gw = common::start().await;
    let lead = create_acme(&gw).await;
    let update = Lead {
        id: lead.id.clone(),
        name: "Acme Corp".into(),
        description: "should not be sent".into(),
        custom: Default::default(),
        ..Default::default()
    };
    let updated = gw
        .leads()
        .update_lead(UpdateLeadRequest {
            lead: Some(update),
            update_mask: Some(FieldMask {
                paths: vec!["name".into(), "custom.cf_tier".into(), "url".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();

    let sent = gw.last();
    assert_eq!(sent.method, "PUT");
    assert_eq!(sent.path, format!("/api/v1/lead/{}/", lead.id));
    assert_eq!(
        sent.body.unwrap(),
        json!({"name": "Acme Corp", "custom.cf_tier": null, "url": null})
    );
    assert_eq!(updated.name, "Acme Corp");
    assert_eq!(
        updated.description, "anvils",
        "an unmasked field must not change"
    );
    assert!(!updated.custom.contains_key("cf_tier"));
}

#[tokio::test]
async fn update_without_mask_is_rejected_before_close() {
    let gw = common::start().await;
    let lead = create_acme(&gw).await;
    gw.emulator.clear_requests();
    let status = gw
        .leads()
        .update_lead(UpdateLeadRequest {
            lead: Some(Lead {
                id: lead.id,
                name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&status), ["update_mask"]);
    assert!(gw.received().is_empty());
}

#[tokio::test]
async fn list_pages_through_every_lead() {
    let gw = common::start().await;
    for i in 0..5 {
        gw.emulator
            .insert_lead(json!({"name": format!("Lead {i}")}));
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = gw
            .leads()
            .list_leads(ListLeadsRequest {
                page_size: 2,
                page_token: token.clone(),
                query: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        names.extend(page.leads.into_iter().map(|l| l.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    names.sort();
    assert_eq!(names, ["Lead 0", "Lead 1", "Lead 2", "Lead 3", "Lead 4"]);
    assert_eq!(pages, 3);
    let sent = gw.last();
    assert!(
        sent.query.contains(&("_skip".to_owned(), "4".to_owned())),
        "{:?}",
        sent.query
    );
    assert!(sent.query.contains(&("_limit".to_owned(), "2".to_owned())));
}

#[tokio::test]
async fn delete_and_merge() {
    let gw = common::start().await;
    let a = gw.emulator.insert_lead(json!({"name": "A"}));
    let b = gw.emulator.insert_lead(json!({"name": "B"}));
    let merged = gw
        .leads()
        .merge_leads(MergeLeadsRequest {
            source_id: a.clone(),
            destination_id: b.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.destination_id, b);
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v1/lead/merge/")
    );
    assert_eq!(sent.body.unwrap(), json!({"source": a, "destination": b}));

    gw.leads()
        .delete_lead(DeleteLeadRequest { id: b.clone() })
        .await
        .unwrap();
    let sent = gw.last();
    assert_eq!(
        (sent.method.as_str(), sent.path.clone()),
        ("DELETE", format!("/api/v1/lead/{b}/"))
    );
    let status = gw
        .leads()
        .get_lead(GetLeadRequest { id: b })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_ids_never_reach_close() {
    let gw = common::start().await;
    for id in ["", "lead_", "task_abc", "lead_../../api_key", "lead_a%2Fb"] {
        let status = gw
            .leads()
            .get_lead(GetLeadRequest { id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{id:?}");
        assert_eq!(common::violated_fields(&status), ["id"], "{id:?}");
    }
    let status = gw
        .leads()
        .merge_leads(MergeLeadsRequest {
            source_id: "lead_same".into(),
            destination_id: "lead_same".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(common::violated_fields(&status), ["destination_id"]);
    assert!(gw.received().is_empty());
}
