//! The Close client against tiny real HTTP servers that answer what Close can answer:
//! empty and non-JSON bodies, oversized bodies, hangs, refused connections, rate-limit headers.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::any;
use close_gateway::close::{
    ApiKey, CallContext, ClientConfig, CloseClient, CloseError, CloseRequest,
};
use serde_json::json;
use tokio::net::TcpListener;

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn client(addr: SocketAddr) -> CloseClient {
    CloseClient::new(ClientConfig {
        base_url: format!("http://{addr}/api/v1"),
        api_keys: vec![ApiKey::new("secret-key")],
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        max_request_bytes: 1000,
        max_response_bytes: 2000,
    })
    .unwrap()
}

#[tokio::test]
async fn sends_basic_auth_and_parses_rate_limit_headers() {
    let router = Router::new().route(
        "/api/v1/lead/",
        any(|headers: HeaderMap| async move {
            let auth = headers[header::AUTHORIZATION].to_str().unwrap().to_owned();
            (
                [("ratelimit", "limit=160; remaining=159; reset=8")],
                axum::Json(json!({"auth": auth})),
            )
        }),
    );
    let addr = serve(router).await;
    let response = client(addr)
        .call(&CloseRequest::get("/lead/"), &CallContext::default())
        .await
        .unwrap();
    // base64("secret-key:")
    assert_eq!(response.body["auth"], "Basic c2VjcmV0LWtleTo=");
    assert_eq!(response.rate_limit.limit, Some(160));
    assert_eq!(response.rate_limit.remaining, Some(159));
    assert_eq!(response.rate_limit.reset, Some(Duration::from_secs(8)));
}

#[tokio::test]
async fn empty_and_non_json_bodies_are_handled() {
    let router = Router::new()
        .route("/api/v1/empty/", any(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/api/v1/html/",
            any(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") }),
        );
    let addr = serve(router).await;
    let client = client(addr);
    let ctx = CallContext::default();
    let empty = client
        .call(&CloseRequest::delete("/empty/"), &ctx)
        .await
        .unwrap();
    assert_eq!((empty.status, empty.body), (204, serde_json::Value::Null));

    let error = client
        .call(&CloseRequest::get("/html/"), &ctx)
        .await
        .unwrap_err();
    let CloseError::Status {
        status, message, ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(status, 502);
    assert_eq!(message, "Bad Gateway");
}

#[tokio::test]
async fn persistent_429s_are_retried_then_reported_with_the_legacy_body() {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = hits.clone();
    let router = Router::new().route(
        "/api/v1/lead/",
        any(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({"error": {"rate_reset": "0.01", "rate_limit": 40, "rate_window": 1}})),
                )
            }
        }),
    );
    let addr = serve(router).await;
    let error = client(addr)
        .call(&CloseRequest::get("/lead/"), &CallContext::default())
        .await
        .unwrap_err();
    let CloseError::Status {
        status, rate_limit, ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(status, 429);
    assert_eq!(rate_limit.reset, Some(Duration::from_millis(10)));
    assert_eq!(rate_limit.retry_after, None);
    assert_eq!(rate_limit.limit, Some(40));
    // The first attempt and eight transparent retries, each after the group reopened.
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 9);
}

#[tokio::test]
async fn size_caps_apply_both_ways() {
    let router = Router::new().route("/api/v1/big/", any(|| async { "x".repeat(5000) }));
    let addr = serve(router).await;
    let client = client(addr);
    let ctx = CallContext::default();
    let error = client
        .call(&CloseRequest::get("/big/"), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CloseError::ResponseTooLarge { limit: 2000 }),
        "{error:?}"
    );

    let big = CloseRequest::post("/big/", json!({"note": "y".repeat(2000)}));
    let error = client.call(&big, &ctx).await.unwrap_err();
    assert!(
        matches!(error, CloseError::RequestTooLarge { limit: 1000, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    // Bind then drop: nothing listens on this port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let error = client(addr)
        .call(
            &CloseRequest::post("/lead/", json!({})),
            &CallContext::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CloseError::Connect(_)), "{error:?}");
}

#[tokio::test]
async fn caller_deadline_bounds_the_upstream_timeout() {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<()>();
    let seen_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(seen_tx)));
    let router = Router::new().route(
        "/api/v1/slow/",
        any(move || {
            let seen_tx = seen_tx.clone();
            async move {
                if let Some(tx) = seen_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                std::future::pending::<String>().await
            }
        }),
    );
    let addr = serve(router).await;
    let ctx = CallContext {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(300)),
        ..Default::default()
    };
    let error = client(addr)
        .call(&CloseRequest::post("/slow/", json!({})), &ctx)
        .await
        .unwrap_err();
    seen_rx.await.unwrap();
    let CloseError::Transport {
        timed_out, method, ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert!(timed_out);
    assert_eq!(method, http::Method::POST);

    let expired = CallContext {
        deadline: Some(tokio::time::Instant::now()),
        ..Default::default()
    };
    let error = client(addr)
        .call(&CloseRequest::get("/slow/"), &expired)
        .await
        .unwrap_err();
    assert!(matches!(error, CloseError::NoTimeLeft), "{error:?}");
}

#[test]
fn api_key_never_shows_in_debug_output() {
    let config = ClientConfig {
        base_url: "http://x".into(),
        api_keys: vec![ApiKey::new("super-secret-key")],
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        max_request_bytes: 1,
        max_response_bytes: 1,
    };
    let shown = format!("{config:?} {:?}", CloseClient::new(config.clone()).unwrap());
    assert!(!shown.contains("super-secret-key"), "{shown}");
}
