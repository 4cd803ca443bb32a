//! What handlers receive (the request context) and answer (Close's JSON and error bodies).

use std::cmp::Ordering;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::store::Caller;
use super::time::parse_micros;

/// Werkzeug's 404 text, which Close answers for unknown paths.
pub(crate) const NOT_FOUND_TEXT: &str = "The requested URL was not found on the server. If you \
    entered the URL manually please check your spelling and try again.";

/// An answer other than 200, in Close's body forms.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// `{"error": "..."}` with this status.
    #[error("{0}: {1}")]
    Message(StatusCode, String),
    /// 400 `{"errors": [], "field-errors": {...}}`.
    #[error("field errors: {0:?}")]
    Fields(Vec<(String, String)>),
    /// `{"errors": [...]}` with this status.
    #[error("{0}: {1:?}")]
    Errors(StatusCode, Vec<String>),
}

impl ApiError {
    /// 400 with one field error.
    pub fn field(name: &str, message: &str) -> Self {
        ApiError::Fields(vec![(name.to_owned(), message.to_owned())])
    }

    /// 404 `Empty query: <Model> matching query does not exist.`
    pub fn missing(model: &str) -> Self {
        ApiError::Message(
            StatusCode::NOT_FOUND,
            format!("Empty query: {model} matching query does not exist."),
        )
    }

    /// 404 for a path Close does not serve.
    pub fn no_route() -> Self {
        ApiError::Message(StatusCode::NOT_FOUND, NOT_FOUND_TEXT.to_owned())
    }

    /// 405 for a method the path does not take.
    pub fn method() -> Self {
        ApiError::Message(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method is not allowed for the requested URL.".to_owned(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Message(status, message) => {
                (status, Json(json!({ "error": message }))).into_response()
            }
            ApiError::Fields(fields) => {
                let fields: Map<String, Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                let body = json!({ "errors": [], "field-errors": fields });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            ApiError::Errors(status, errors) => {
                (status, Json(json!({ "errors": errors }))).into_response()
            }
        }
    }
}

pub(crate) type Reply = Result<Json<Value>, ApiError>;

/// What the gate learned about a request, handed to its handler.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub caller: Caller,
    pub params: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only the gate dispatches to handlers, and it always inserts a Ctx.
        parts
            .extensions
            .remove::<Ctx>()
            .ok_or_else(ApiError::no_route)
    }
}

impl Ctx {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON object body; 400 when it is missing or not an object.
    pub fn object(&self) -> Result<&Map<String, Value>, ApiError> {
        match &self.body {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(ApiError::Errors(
                StatusCode::BAD_REQUEST,
                vec!["Request body must be a JSON object.".to_owned()],
            )),
        }
    }

    /// `_skip` and `_limit` (default 100, at most `max`).
    pub fn page(&self, max: usize) -> Result<(usize, usize), ApiError> {
        let skip = match self.param("_skip") {
            Some(s) => s
                .parse()
                .map_err(|_| ApiError::field("_skip", "A valid integer is required."))?,
            None => 0,
        };
        let limit = match self.param("_limit") {
            Some(s) => s
                .parse()
                .map_err(|_| ApiError::field("_limit", "A valid integer is required."))?,
            None => 100.min(max),
        };
        if limit > max {
            let message = format!("Ensure this value is less than or equal to {max}.");
            return Err(ApiError::field("_limit", &message));
        }
        Ok((skip, limit))
    }

    /// `<field>__lt`, `__lte`, `__gt`, `__gte` as `(instant, accepted ordering)` pairs.
    pub fn bounds(&self, field: &str) -> Result<Vec<Bound>, ApiError> {
        let mut bounds = Vec::new();
        for (suffix, keep) in [
            ("lt", Ordering::is_lt as fn(Ordering) -> bool),
            ("lte", Ordering::is_le),
            ("gt", Ordering::is_gt),
            ("gte", Ordering::is_ge),
        ] {
            let name = format!("{field}__{suffix}");
            let Some(text) = self.param(&name) else {
                continue;
            };
            let at = parse_micros(text)
                .ok_or_else(|| ApiError::field(&name, "Not a valid date or datetime."))?;
            bounds.push((at, keep));
        }
        Ok(bounds)
    }

    /// `_fields` as a list, if given.
    pub fn fields(&self) -> Option<Vec<String>> {
        let fields = self.param("_fields")?;
        Some(
            fields
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

/// A time bound of a list filter: the instant, and which orderings against it pass.
pub(crate) type Bound = (i64, fn(Ordering) -> bool);

/// True when `value` satisfies every bound (an absent value satisfies none).
pub(crate) fn within(bounds: &[Bound], value: Option<i64>) -> bool {
    bounds
        .iter()
        .all(|(at, keep)| value.is_some_and(|v| keep(v.cmp(at))))
}

/// Keeps only `fields` of an object (all when `None`).
pub(crate) fn project(row: &Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Some(object)) = (fields, row.as_object()) else {
        return row.clone();
    };
    let kept: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| fields.iter().any(|f| f == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// One page of `rows` as `{"data": [...], "has_more": bool}`.
pub(crate) fn page_of<'a>(rows: impl Iterator<Item = &'a Value>, ctx: &Ctx, max: usize) -> Reply {
    let (skip, limit) = ctx.page(max)?;
    let fields = ctx.fields();
    let mut data = Vec::new();
    let mut has_more = false;
    for row in rows.skip(skip) {
        if data.len() == limit {
            has_more = true;
            break;
        }
        data.push(project(row, fields.as_deref()));
    }
    Ok(Json(json!({ "data": data, "has_more": has_more })))
}

/// One object, with `_fields` applied.
pub(crate) fn one(row: &Value, ctx: &Ctx) -> Reply {
    Ok(Json(project(row, ctx.fields().as_deref())))
}

/// `{}`, Close's answer to deletes and merges.
pub(crate) fn empty() -> Reply {
    Ok(Json(json!({})))
}
