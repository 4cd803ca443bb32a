//! The emulator's Advanced Filtering (`/data/search/`) over real HTTP: query tree, paging
//! by cursors, cursor expiry on a paused clock, and the result cap.

mod emulator_support;

use std::time::Duration;

use close_gateway::emulator::{CURSOR_EXPIRED, EmulatorConfig};
use emulator_support::{ids, start};
use serde_json::{Value, json};

fn lead_search(extra: Value) -> Value {
    let mut body = json!({"query": {"type": "and", "queries": [
        {"type": "object_type", "object_type": "lead"}]}, "_limit": 2});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

#[tokio::test]
async fn search_pages_with_cursors_until_the_cursor_is_null() {
    let api = start(EmulatorConfig::default()).await;
    let made: Vec<String> = ["Red Co", "Blue Co", "Red Inc", "Green", "Redwood"]
        .into_iter()
        .map(|name| api.emu.insert_lead(json!({"name": name})))
        .collect();
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let page = api
            .post("/data/search/", lead_search(json!({"cursor": cursor})))
            .await
            .json();
        assert_eq!(page["data"][0]["__object_type"], "lead");
        seen.extend(ids(&page));
        pages += 1;
        cursor = page["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!((seen, pages), (made.clone(), 3));

    let red = json!({"type": "field_condition", "condition": {"type": "text", "value": "red"},
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "name"}});
    let mut not_red = red.clone();
    not_red["negate"] = json!(true);
    let query = |cond: &Value| {
        json!({"query": {"type": "and", "queries": [
        {"type": "object_type", "object_type": "lead"}, cond]},
        "_fields": {"lead": ["id", "display_name"]}})
    };
    let reds = api.post("/data/search/", query(&red)).await.json();
    assert_eq!(
        reds["data"][1],
        json!({"id": made[2], "display_name": "Red Inc"})
    );
    assert_eq!(
        (reds["data"].as_array().unwrap().len(), &reds["cursor"]),
        (3, &Value::Null)
    );
    let others = api.post("/data/search/", query(&not_red)).await.json();
    assert_eq!(ids(&others), [made[1].as_str(), made[3].as_str()]);

    let contacts = json!({"query": {"type": "and", "queries": [
        {"type": "object_type", "object_type": "contact"},
        {"type": "field_condition", "condition": {"type": "term", "values": ["Jo"]},
         "field": {"type": "regular_field", "object_type": "contact", "field_name": "name"}}]},
        "_fields": {"contact": ["name", "lead_id"]}});
    let jo = api
        .emu
        .insert_lead(json!({"name": "People", "contacts": [{"name": "Jo"}, {"name": "Joe"}]}));
    let found = api.post("/data/search/", contacts).await.json();
    assert_eq!(found["data"], json!([{"name": "Jo", "lead_id": jo}]));

    let unknown = api
        .post("/data/search/", json!({"query": {"type": "fuzzy"}}))
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.json()["field-errors"]["query"],
        "Unknown query type \"fuzzy\"."
    );
}

#[tokio::test(start_paused = true)]
async fn search_cursors_expire_after_their_ttl() {
    let api = start(EmulatorConfig::default()).await;
    for name in ["a", "b", "c", "d", "e"] {
        api.emu.insert_lead(json!({"name": name}));
    }
    let first = api
        .post("/data/search/", lead_search(json!({})))
        .await
        .json();
    tokio::time::advance(Duration::from_secs(29)).await;
    let second = api
        .post(
            "/data/search/",
            lead_search(json!({"cursor": first["cursor"]})),
        )
        .await;
    assert_eq!(second.status, 200);
    tokio::time::advance(Duration::from_secs(30)).await;
    let third = api
        .post(
            "/data/search/",
            lead_search(json!({"cursor": second.json()["cursor"]})),
        )
        .await;
    assert_eq!(third.status, 400);
    assert_eq!(
        third.json(),
        json!({"errors": [], "field-errors": {"cursor": CURSOR_EXPIRED}})
    );
}

#[tokio::test]
async fn search_stops_with_a_null_cursor_at_the_result_cap() {
    let config = EmulatorConfig {
        search_result_cap: 3,
        ..EmulatorConfig::default()
    };
    let api = start(config).await;
    for name in ["a", "b", "c", "d", "e"] {
        api.emu.insert_lead(json!({"name": name}));
    }
    let first = api
        .post("/data/search/", lead_search(json!({})))
        .await
        .json();
    let second = api
        .post(
            "/data/search/",
            lead_search(json!({"cursor": first["cursor"]})),
        )
        .await
        .json();
    assert_eq!((ids(&first).len(), ids(&second).len()), (2, 1));
    assert_eq!(second["cursor"], Value::Null);
}
