//! The emulator's resources over real HTTP: leads, tasks, activities, auth, organizations.
//! Search is in `emulator_search.rs`, rate limits and faults in `emulator_limits.rs`.

mod emulator_support;

use close_gateway::emulator::{ApiKey, DEV_LEAD_ID, EmulatorConfig, UNAUTHORIZED_TEXT};
use emulator_support::{ids, is_close_timestamp, start};
use serde_json::{Value, json};

#[tokio::test]
async fn leads_are_created_read_patched_and_deleted() {
    let api = start(EmulatorConfig::default()).await;
    let created = api
        .post(
            "/lead/",
            json!({
                "name": "Acme", "url": "https://acme.example",
                "contacts": [{"name": "Jane", "emails": [{"email": "jane@acme.example"}],
                              "phones": [{"phone": "+16505551234", "type": "mobile"}]}],
                "addresses": [{"city": "Paris", "country": "FR"}],
                "custom": {"cf_a": "one"}, "custom.cf_b": 2,
            }),
        )
        .await;
    assert_eq!(created.status, 200);
    let lead = created.json();
    let id = lead["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("lead_") && id.len() == 48, "{id}");
    assert_eq!(lead["display_name"], "Acme");
    assert_eq!(lead["status_label"], "Potential");
    assert_eq!(lead["custom"], json!({"cf_a": "one", "cf_b": 2}));
    assert_eq!(lead["custom.cf_a"], "one");
    assert_eq!(lead["custom.cf_b"], 2);
    assert_eq!(lead["organization_id"], "orga_test");
    assert_eq!(lead["opportunities"], json!([]));
    assert_eq!(
        lead["html_url"],
        format!("https://app.close.com/lead/{id}/")
    );
    assert!(is_close_timestamp(&lead["date_created"]));
    let contact = &lead["contacts"][0];
    assert!(contact["id"].as_str().unwrap().starts_with("cont_"));
    assert_eq!(contact["lead_id"], id.as_str());
    assert_eq!(contact["emails"][0]["type"], "office");
    assert_eq!(lead["addresses"][0]["city"], "Paris");
    assert_eq!(lead["addresses"][0]["zipcode"], Value::Null);

    let fetched = api.get(&format!("/lead/{id}/")).await;
    assert_eq!(fetched.json(), lead);
    let some = api
        .get(&format!("/lead/{id}/?_fields=id,custom.cf_b"))
        .await;
    assert_eq!(some.json(), json!({"id": id, "custom.cf_b": 2}));

    let patched = api
        .put(
            &format!("/lead/{id}/"),
            json!({"description": "new", "custom.cf_a": null, "contacts": [],
                   "status_id": "stat_3QualifiedEmulator"}),
        )
        .await
        .json();
    assert_eq!(patched["description"], "new");
    assert_eq!(patched["name"], "Acme");
    assert_eq!(patched["custom"], json!({"cf_b": 2}));
    assert_eq!(patched.get("custom.cf_a"), None);
    assert_eq!(patched["contacts"], lead["contacts"]);
    assert_eq!(patched["status_label"], "Qualified");

    let history = api.get(&format!("/activity/?lead_id={id}")).await.json();
    let types: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["LeadStatusChange", "Created"]);

    let bad = api
        .put(&format!("/lead/{id}/"), json!({"status_id": "stat_nope"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json(),
        json!({"errors": [], "field-errors": {"status_id": "Object does not exist."}})
    );

    let deleted = api.delete(&format!("/lead/{id}/")).await;
    assert_eq!((deleted.status, deleted.json()), (200, json!({})));
    let gone = api.get(&format!("/lead/{id}/")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json(),
        json!({"error": "Empty query: Lead matching query does not exist."})
    );
    let history = api.get(&format!("/activity/?lead_id={id}")).await.json();
    assert_eq!(history["data"], json!([]));
}

#[tokio::test]
async fn lead_lists_page_filter_and_refuse_large_pages() {
    let api = start(EmulatorConfig::default()).await;
    let mut made = Vec::new();
    for (name, status) in [
        ("Alpha", "Potential"),
        ("Beta", "Bad Fit"),
        ("Gamma", "Potential"),
        ("Alphabet", "Bad Fit"),
        ("Delta", "Customer"),
    ] {
        made.push(api.emu.insert_lead(json!({"name": name, "status": status})));
    }
    let first = api.get("/lead/?_limit=2").await.json();
    assert_eq!(
        (ids(&first), &first["has_more"]),
        (made[..2].to_vec(), &json!(true))
    );
    let last = api.get("/lead/?_skip=4&_limit=2").await.json();
    assert_eq!(
        (ids(&last), &last["has_more"]),
        (made[4..].to_vec(), &json!(false))
    );
    let all = api.get("/lead/").await.json();
    assert_eq!(ids(&all), made);

    let too_big = api.get("/lead/?_limit=201").await;
    assert_eq!(too_big.status, 400);
    assert_eq!(
        too_big.json()["field-errors"]["_limit"],
        "Ensure this value is less than or equal to 200."
    );

    let bad_fit = api.get("/lead/?query=status:%22Bad%20Fit%22").await.json();
    assert_eq!(ids(&bad_fit), [made[1].as_str(), made[3].as_str()]);
    let alpha = api.get("/lead/?query=alpha").await.json();
    assert_eq!(ids(&alpha), [made[0].as_str(), made[3].as_str()]);
    let both = api
        .get("/lead/?query=alpha%20status:%22bad%20fit%22")
        .await
        .json();
    assert_eq!(ids(&both), [made[3].as_str()]);
    let sorted = api
        .get("/lead/?query=sort:-name&_fields=display_name")
        .await
        .json();
    assert_eq!(sorted["data"][0], json!({"display_name": "Gamma"}));
}

#[tokio::test]
async fn merge_moves_the_source_into_the_destination() {
    let api = start(EmulatorConfig::default()).await;
    let source = api
        .emu
        .insert_lead(json!({"name": "Src", "custom": {"cf_x": "s", "cf_y": "s"},
        "contacts": [{"name": "Sam"}]}));
    let dest = api
        .emu
        .insert_lead(json!({"name": "Dst", "custom": {"cf_x": "d"},
        "contacts": [{"name": "Dora"}]}));
    let task = api
        .emu
        .insert_task(json!({"lead_id": source, "text": "call"}));
    let merged = api
        .post(
            "/lead/merge/",
            json!({"source": source, "destination": dest}),
        )
        .await;
    assert_eq!((merged.status, merged.json()), (200, json!({})));
    assert_eq!(api.get(&format!("/lead/{source}/")).await.status, 404);
    let lead = api.get(&format!("/lead/{dest}/")).await.json();
    assert_eq!(lead["custom"], json!({"cf_x": "d", "cf_y": "s"}));
    let names: Vec<&str> = lead["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Dora", "Sam"]);
    assert_eq!(
        api.get(&format!("/task/{task}/")).await.json()["lead_id"],
        dest.as_str()
    );

    let missing = api
        .post(
            "/lead/merge/",
            json!({"source": source, "destination": dest}),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"errors": ["Source lead does not exist."]})
    );
}

#[tokio::test]
async fn tasks_are_created_completed_filtered_and_deleted() {
    let api = start(EmulatorConfig::default()).await;
    let lead = api.emu.insert_lead(json!({"name": "Acme"}));
    let missing = api
        .post("/task/", json!({"lead_id": "lead_nope", "text": "x"}))
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"errors": [], "field-errors": {"lead": "Object does not exist."}})
    );
    let email_task = api
        .post(
            "/task/",
            json!({"lead_id": lead, "_type": "email", "text": "x"}),
        )
        .await;
    assert_eq!(email_task.status, 400);
    assert!(email_task.json()["field-errors"]["_type"].is_string());

    let task = api
        .post(
            "/task/",
            json!({"lead_id": lead, "text": "Call back", "date": "2000-01-02"}),
        )
        .await
        .json();
    let id = task["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("task_"));
    assert_eq!(
        (&task["_type"], &task["is_complete"], &task["lead_name"]),
        (&json!("lead"), &json!(false), &json!("Acme"))
    );
    let later = api
        .post(
            "/task/",
            json!({"lead_id": lead, "_type": "outgoing_call", "date": "2999-01-01T10:00:00+00:00"}),
        )
        .await
        .json();
    let later_id = later["id"].as_str().unwrap().to_owned();

    let inbox = api
        .get(&format!("/task/?lead_id={lead}&view=inbox"))
        .await
        .json();
    assert_eq!(ids(&inbox), [id.as_str()]);
    let future = api.get("/task/?view=future").await.json();
    assert_eq!(ids(&future), [later_id.as_str()]);

    let done = api
        .put(&format!("/task/{id}/"), json!({"is_complete": true}))
        .await
        .json();
    assert_eq!(done["is_complete"], true);
    assert_eq!(done["object_type"], "taskcompleted");
    let acti = done["object_id"].as_str().unwrap().to_owned();
    assert!(acti.starts_with("acti_"));
    let completed = api
        .get(&format!("/activity/task_completed/{acti}/"))
        .await
        .json();
    assert_eq!(
        (&completed["_type"], &completed["task_id"]),
        (&json!("TaskCompleted"), &json!(id))
    );

    let archive = api.get("/task/?view=archive").await.json();
    assert_eq!(ids(&archive), [id.as_str()]);
    let open = api.get("/task/?is_complete=false").await.json();
    assert_eq!(ids(&open), [later_id.as_str()]);
    let by_date = api.get("/task/?_order_by=-date").await.json();
    assert_eq!(ids(&by_date), [later_id.as_str(), id.as_str()]);

    assert_eq!(api.delete(&format!("/task/{id}/")).await.json(), json!({}));
    assert_eq!(api.get(&format!("/task/{id}/")).await.status, 404);
}

#[tokio::test]
async fn activities_are_validated_typed_and_listed() {
    let api = start(EmulatorConfig::default()).await;
    let lead = api.emu.insert_lead(json!({"name": "Acme"}));
    let note = api
        .post("/activity/note/", json!({"lead_id": lead, "note": "hi"}))
        .await
        .json();
    let note_id = note["id"].as_str().unwrap().to_owned();
    assert!(note_id.starts_with("acti_"));
    assert_eq!(
        (&note["_type"], &note["note_html"]),
        (&json!("Note"), &json!("<p>hi</p>"))
    );
    assert!(is_close_timestamp(&note["activity_at"]));

    let no_lead = api.post("/activity/note/", json!({"note": "hi"})).await;
    assert_eq!(
        no_lead.json(),
        json!({"errors": [], "field-errors": {"lead": "This field is required."}})
    );
    let no_sender = api
        .post(
            "/activity/email/",
            json!({"lead_id": lead, "status": "inbox"}),
        )
        .await;
    assert_eq!(
        no_sender.json(),
        json!({"errors": [], "field-errors": {"sender": "This field is required."}})
    );
    let bad_status = api
        .post(
            "/activity/email/",
            json!({"lead_id": lead, "status": "lost"}),
        )
        .await;
    assert_eq!(bad_status.status, 400);
    let email = api
        .post(
            "/activity/email/",
            json!({"lead_id": lead, "status": "inbox", "sender": "a@b.c", "subject": "Hi"}),
        )
        .await
        .json();
    assert_eq!(
        (&email["_type"], &email["direction"]),
        (&json!("Email"), &json!("incoming"))
    );
    let bad_call = api
        .post(
            "/activity/call/",
            json!({"lead_id": lead, "direction": "sideways"}),
        )
        .await;
    assert_eq!(
        bad_call.json()["field-errors"]["direction"],
        "Must be one of: inbound, outbound."
    );
    let sms = api
        .post(
            "/activity/sms/",
            json!({"lead_id": lead, "status": "sent", "text": "yo", "remote_phone": "+1"}),
        )
        .await
        .json();
    assert_eq!(
        (&sms["_type"], &sms["direction"]),
        (&json!("SMS"), &json!("outbound"))
    );

    assert_eq!(
        api.get(&format!("/activity/note/{note_id}/")).await.json(),
        note
    );
    let wrong_type = api.get(&format!("/activity/call/{note_id}/")).await;
    assert_eq!(wrong_type.status, 404);
    let edited = api
        .put(
            &format!("/activity/note/{note_id}/"),
            json!({"note": "bye"}),
        )
        .await
        .json();
    assert_eq!(
        (&edited["note"], &edited["id"]),
        (&json!("bye"), &json!(note_id))
    );

    let notes = api
        .get(&format!("/activity/?lead_id={lead}&_type=Note"))
        .await
        .json();
    assert_eq!(ids(&notes), [note_id.as_str()]);
    let two = api
        .get(&format!("/activity/?lead_id={lead}&_type__in=Note,SMS"))
        .await
        .json();
    assert_eq!(
        ids(&two),
        [sms["id"].as_str().unwrap().to_owned(), note_id.clone()]
    );
    let unscoped = api.get("/activity/?_type=Note").await;
    assert_eq!(
        unscoped.json(),
        json!({"errors": ["The _type filters require a single lead_id."]})
    );
    let emails = api.get("/activity/email/").await.json();
    assert_eq!(ids(&emails), [email["id"].as_str().unwrap().to_owned()]);

    assert_eq!(
        api.delete(&format!("/activity/note/{note_id}/"))
            .await
            .json(),
        json!({})
    );
    assert_eq!(
        api.get(&format!("/activity/note/{note_id}/")).await.status,
        404
    );
    assert_eq!(
        api.post("/activity/created/", json!({"lead_id": lead}))
            .await
            .status,
        405
    );
}

#[tokio::test]
async fn missing_or_unknown_keys_get_401_and_are_recorded() {
    let api = start(EmulatorConfig::default()).await;
    let unauthorized = json!({"error": UNAUTHORIZED_TEXT});
    let none = api.try_call(None, "GET", "/lead/", None).await.unwrap();
    assert_eq!((none.status, none.json()), (401, unauthorized.clone()));
    let wrong = api
        .try_call(Some("nope"), "GET", "/lead/?_limit=1", None)
        .await
        .unwrap();
    assert_eq!((wrong.status, wrong.json()), (401, unauthorized));
    assert_eq!(wrong.header("ratelimit"), None);
    let recorded = api.emu.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].api_key.as_deref(), Some("nope"));
    assert_eq!(
        (recorded[1].path.as_str(), recorded[1].status),
        ("/api/v1/lead/", 401)
    );
    assert_eq!(recorded[1].query, [("_limit".to_owned(), "1".to_owned())]);
    assert!(api.emu.stats().buckets.is_empty());
    api.emu.clear_requests();
    assert!(api.emu.requests().is_empty());
}

#[tokio::test]
async fn organizations_see_only_their_own_data() {
    let mut config = EmulatorConfig::default();
    config.api_keys.push(ApiKey::new("other-key", "orga_other"));
    let api = start(config).await;
    let id = api.post("/lead/", json!({"name": "Mine"})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = api
        .try_call(Some("other-key"), "GET", &format!("/lead/{id}/"), None)
        .await
        .unwrap();
    assert_eq!(theirs.status, 404);
    let list = api
        .try_call(Some("other-key"), "GET", "/lead/", None)
        .await
        .unwrap();
    assert_eq!(list.json()["data"], json!([]));
}

#[tokio::test]
async fn dev_config_is_seeded_with_known_ids() {
    let api = start(EmulatorConfig::dev()).await;
    let lead = api.get(&format!("/lead/{DEV_LEAD_ID}/")).await.json();
    assert_eq!(
        (&lead["name"], &lead["contacts"][0]["name"]),
        (&json!("Acme Rockets"), &json!("Wile E. Coyote"))
    );
    assert_eq!(
        api.get("/lead/").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        api.get("/status/lead/").await.json()["data"][0]["label"],
        "Potential"
    );
}
