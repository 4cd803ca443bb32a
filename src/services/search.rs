//! SearchService: Close's Advanced Filtering (`POST /data/search/`), one page or every page.
//!
//! `SearchAll` walks Close's cursors in a task that stops as soon as the caller goes away. A
//! cursor that expires mid-walk, or Close's result cap, ends the stream with ABORTED: a caller
//! never mistakes a cut-off walk for the whole answer.

use futures::StreamExt;
use prost_types::Struct;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{bad_response, from_struct, page_limit, to_struct};
use super::validate::Violations;
use super::{Gateway, context};
use crate::close::{CallContext, CloseClient, CloseError, CloseRequest};
use crate::error::Error;
use crate::proto::close::v1::search_service_server::SearchService as Api;
use crate::proto::close::v1::*;

/// Close returns at most this many results for one query, however it is paged.
pub const RESULT_CAP: u64 = 10_000;
/// Largest page Close accepts.
const MAX_PAGE_SIZE: u32 = 200;
/// SearchAll's page size when the caller leaves it at 0.
const DEFAULT_WALK_PAGE_SIZE: u32 = 100;
/// Longest page token (Close cursor) we forward.
const MAX_TOKEN_LEN: usize = 4096;
/// Pages fetched ahead of the caller: small, since a slow caller lets cursors expire anyway.
const WALK_BUFFER: usize = 1;

pub struct SearchService {
    gateway: Gateway,
    result_cap: u64,
}

impl SearchService {
    pub fn new(gateway: Gateway) -> Self {
        Self::with_result_cap(gateway, RESULT_CAP)
    }

    /// For tests against an emulator configured with a smaller cap than Close's.
    pub fn with_result_cap(gateway: Gateway, result_cap: u64) -> Self {
        SearchService {
            gateway,
            result_cap,
        }
    }
}

type WalkStream = futures::stream::BoxStream<'static, Result<SearchAllResponse, Status>>;

#[tonic::async_trait]
impl Api for SearchService {
    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check_query(&mut v, req.query.as_ref());
        check_token(&mut v, &req.page_token);
        v.finish()?;
        let limit = page_limit(req.page_size, 0, MAX_PAGE_SIZE)?;
        let query = Query::new(req.query, req.fields, req.sort, limit);
        let page = fetch(&self.gateway.client, &ctx, &query, &req.page_token, 0).await?;
        Ok(Response::new(SearchResponse {
            data: page.data,
            next_page_token: page.cursor.unwrap_or_default(),
        }))
    }

    type SearchAllStream = WalkStream;

    async fn search_all(
        &self,
        request: Request<SearchAllRequest>,
    ) -> Result<Response<Self::SearchAllStream>, Status> {
        let ctx = context(request.metadata())?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check_query(&mut v, req.query.as_ref());
        v.finish()?;
        let limit = page_limit(req.page_size, DEFAULT_WALK_PAGE_SIZE, MAX_PAGE_SIZE)?;
        let walk = Walk {
            client: self.gateway.client.clone(),
            ctx,
            query: Query::new(req.query, req.fields, req.sort, limit),
            result_cap: self.result_cap,
        };
        let (tx, rx) = mpsc::channel(WALK_BUFFER);
        tokio::spawn(walk.run(tx));
        Ok(Response::new(ReceiverStream::new(rx).boxed()))
    }
}

fn check_query(v: &mut Violations, query: Option<&Struct>) {
    if query.is_none_or(|q| q.fields.is_empty()) {
        v.add(
            "query",
            "is required: Close's query tree, e.g. {\"type\": \"and\", ...}",
        );
    }
}

fn check_token(v: &mut Violations, token: &str) {
    if token.len() > MAX_TOKEN_LEN {
        v.add(
            "page_token",
            format!("is longer than {MAX_TOKEN_LEN} bytes"),
        );
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        v.add("page_token", "not a page token returned by this API");
    }
}

/// The parts of a search body that stay the same from page to page.
struct Query {
    body: Map<String, Value>,
}

impl Query {
    fn new(query: Option<Struct>, fields: Option<Struct>, sort: Vec<Struct>, limit: u32) -> Self {
        let mut body = Map::new();
        let query = query.as_ref().map(from_struct).unwrap_or_default();
        body.insert("query".into(), Value::Object(query));
        if let Some(fields) = fields.filter(|f| !f.fields.is_empty()) {
            body.insert("_fields".into(), Value::Object(from_struct(&fields)));
        }
        if !sort.is_empty() {
            let sort = sort.iter().map(|s| Value::Object(from_struct(s))).collect();
            body.insert("sort".into(), Value::Array(sort));
        }
        if limit > 0 {
            body.insert("_limit".into(), Value::from(limit));
        }
        Query { body }
    }

    fn request(&self, cursor: &str) -> CloseRequest {
        let mut body = self.body.clone();
        if !cursor.is_empty() {
            body.insert("cursor".into(), Value::String(cursor.to_owned()));
        }
        CloseRequest::post("/data/search/", Value::Object(body))
    }
}

/// One page of results and Close's cursor for the next (`None` on the last page).
struct Page {
    data: Vec<Struct>,
    cursor: Option<String>,
}

/// Fetches one page. A 400 to a request that carried a cursor and whose body mentions the
/// cursor means the cursor expired (or was garbled): the search must restart.
async fn fetch(
    client: &CloseClient,
    ctx: &CallContext,
    query: &Query,
    cursor: &str,
    pages: u64,
) -> Result<Page, Error> {
    let request = query.request(cursor);
    let response = client.call(&request, ctx).await?;
    if (200..300).contains(&response.status) {
        return parse_page(response.body);
    }
    if response.status == 400 && !cursor.is_empty() && mentions_cursor(&response.body) {
        return Err(Error::CursorExpired { pages });
    }
    Err(CloseError::from_status(
        request.method,
        &request.path,
        response.status,
        &response.body,
        response.rate_limit,
    )
    .into())
}

/// Whether an error body talks about the cursor, whatever its shape: Close's wording is not
/// documented, so any mention (message, `errors`, `field-errors` key) counts.
fn mentions_cursor(body: &Value) -> bool {
    body.to_string().to_ascii_lowercase().contains("cursor")
}

fn parse_page(body: Value) -> Result<Page, Error> {
    let Value::Object(mut map) = body else {
        return Err(bad_response("search answer is not an object"));
    };
    let Some(Value::Array(items)) = map.remove("data") else {
        return Err(bad_response("search answer has no data array"));
    };
    let cursor = match map.remove("cursor") {
        Some(Value::String(c)) if !c.is_empty() => Some(c),
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(_) => return Err(bad_response("search cursor is not a string")),
    };
    let data = items
        .into_iter()
        .filter_map(|item| match item {
            Value::Object(map) => Some(to_struct(map)),
            _ => None,
        })
        .collect();
    Ok(Page { data, cursor })
}

/// A SearchAll in progress: owns everything it needs, so that it can run in its own task.
struct Walk {
    client: CloseClient,
    ctx: CallContext,
    query: Query,
    result_cap: u64,
}

impl Walk {
    /// Sends page after page until the last, an error, or the caller's departure (the stream
    /// is dropped, closing `tx`): then an in-flight request is dropped and nothing more is sent.
    async fn run(self, tx: mpsc::Sender<Result<SearchAllResponse, Status>>) {
        let outcome = tokio::select! {
            outcome = self.pages(&tx) => outcome,
            () = tx.closed() => Err(Stop::Cancelled),
        };
        match outcome {
            Ok(pages) => tracing::debug!(pages, "search walk finished"),
            Err(Stop::Cancelled) => tracing::debug!("search walk cancelled by the caller"),
            Err(Stop::Failed(error)) => {
                tracing::info!(%error, "search walk ended with an error");
                let _ = tx.send(Err(error.into())).await;
            }
        }
    }

    async fn pages(
        &self,
        tx: &mpsc::Sender<Result<SearchAllResponse, Status>>,
    ) -> Result<u64, Stop> {
        let mut cursor = String::new();
        let mut pages = 0u64;
        let mut results = 0u64;
        loop {
            let page = fetch(&self.client, &self.ctx, &self.query, &cursor, pages).await;
            let page = match page {
                Ok(page) => page,
                // Past the cap Close may refuse the next cursor rather than drop it; a
                // transient failure (429, 5xx) is still reported as itself.
                Err(error) if results >= self.result_cap && refused(&error) => {
                    return Err(Stop::Failed(self.cap_reached()));
                }
                Err(error) => return Err(Stop::Failed(error)),
            };
            pages += 1;
            let returned = page.data.len() as u64;
            results += returned;
            let done = page.cursor.is_none() || returned == 0;
            if returned > 0 {
                let response = SearchAllResponse { data: page.data };
                tx.send(Ok(response)).await.map_err(|_| Stop::Cancelled)?;
            }
            if done && results >= self.result_cap {
                return Err(Stop::Failed(self.cap_reached()));
            }
            let Some(next) = page.cursor.filter(|_| !done) else {
                return Ok(pages);
            };
            cursor = next;
        }
    }

    fn cap_reached(&self) -> Error {
        Error::ResultCapReached {
            cap: self.result_cap,
        }
    }
}

/// Close refused the request as malformed (400), as opposed to failing or throttling it.
fn refused(error: &Error) -> bool {
    match error {
        Error::CursorExpired { .. } => true,
        Error::Close(CloseError::Status { status, .. }) => *status == 400,
        _ => false,
    }
}

enum Stop {
    Cancelled,
    Failed(Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pb_struct(value: Value) -> Struct {
        match value {
            Value::Object(map) => to_struct(map),
            _ => Struct::default(),
        }
    }

    #[test]
    fn body_holds_only_what_was_given() {
        let query = Query::new(
            Some(pb_struct(json!({"type": "and", "queries": []}))),
            None,
            vec![],
            0,
        );
        assert_eq!(
            Value::Object(query.request("").body.unwrap().as_object().unwrap().clone()),
            json!({"query": {"type": "and", "queries": []}})
        );
        let query = Query::new(
            Some(pb_struct(
                json!({"type": "object_type", "object_type": "lead"}),
            )),
            Some(pb_struct(json!({"lead": ["id", "display_name"]}))),
            vec![pb_struct(
                json!({"direction": "asc", "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"}}),
            )],
            50,
        );
        let request = query.request("abc");
        assert_eq!(request.path, "/data/search/");
        assert_eq!(
            request.body.unwrap(),
            json!({
                "query": {"type": "object_type", "object_type": "lead"},
                "_fields": {"lead": ["id", "display_name"]},
                "sort": [{"direction": "asc", "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"}}],
                "_limit": 50,
                "cursor": "abc",
            })
        );
    }

    #[test]
    fn pages_parse() {
        let page = parse_page(json!({"data": [{"id": "lead_1"}, 3], "cursor": "c1"})).unwrap();
        assert_eq!(page.data.len(), 1);
        assert_eq!(page.cursor.as_deref(), Some("c1"));
        let page = parse_page(json!({"data": [], "cursor": null})).unwrap();
        assert_eq!(page.cursor, None);
        assert!(
            parse_page(json!({"data": [], "cursor": ""}))
                .unwrap()
                .cursor
                .is_none()
        );
        assert!(parse_page(json!({"cursor": "x"})).is_err());
        assert!(parse_page(json!({"data": [], "cursor": 5})).is_err());
        assert!(parse_page(Value::Null).is_err());
    }

    #[test]
    fn cursor_mentions_are_found_in_any_shape() {
        assert!(mentions_cursor(&json!({"error": "Cursor expired"})));
        assert!(mentions_cursor(
            &json!({"errors": ["Invalid or expired cursor."]})
        ));
        assert!(mentions_cursor(
            &json!({"field-errors": {"cursor": "expired"}})
        ));
        assert!(mentions_cursor(
            &json!({"error": {"message": "The CURSOR is no longer valid"}})
        ));
        assert!(!mentions_cursor(&json!({"field-errors": {"query": "bad"}})));
        assert!(!mentions_cursor(&Value::Null));
    }

    #[test]
    fn only_a_400_past_the_cap_counts_as_the_cap() {
        let status = |code| {
            let info = crate::close::ratelimit::RateLimitInfo::default();
            Error::Close(CloseError::from_status(
                http::Method::POST,
                "/data/search/",
                code,
                &json!({}),
                info,
            ))
        };
        assert!(refused(&Error::CursorExpired { pages: 3 }));
        assert!(refused(&status(400)));
        for code in [401, 429, 500, 503] {
            assert!(!refused(&status(code)), "{code}");
        }
        assert!(!refused(&Error::Close(CloseError::NoTimeLeft)));
    }

    #[test]
    fn tokens_are_bounded() {
        let mut v = Violations::new();
        check_token(&mut v, "");
        check_token(&mut v, "abc.DEF_123-=");
        assert!(v.finish().is_ok());
        for bad in [
            "a b".to_owned(),
            "a\nb".to_owned(),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            let mut v = Violations::new();
            check_token(&mut v, &bad);
            let Err(Error::InvalidArgument(violations)) = v.finish() else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(violations[0].field, "page_token");
        }
    }

    #[test]
    fn query_is_required() {
        for query in [None, Some(Struct::default())] {
            let mut v = Violations::new();
            check_query(&mut v, query.as_ref());
            let Err(Error::InvalidArgument(violations)) = v.finish() else {
                panic!("{query:?} accepted");
            };
            assert_eq!(violations[0].field, "query");
        }
    }
}
