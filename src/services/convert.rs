//! Conversions between Close's JSON and the protobuf well-known types, and page tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value as PbValue};
use serde_json::{Map, Number, Value};

use crate::error::{Error, invalid};

pub fn to_pb_value(value: Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_pb_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    PbValue { kind: Some(kind) }
}

pub fn to_struct(map: Map<String, Value>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_pb_value(v))).collect(),
    }
}

/// Integral numbers go back to JSON as integers: Close rejects `40.0` where it wants `40`.
pub fn from_pb_value(value: &PbValue) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(from_pb_value).collect())
        }
        Some(Kind::StructValue(s)) => Value::Object(from_struct(s)),
    }
}

pub fn from_struct(s: &Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), from_pb_value(v)))
        .collect()
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Close's timestamps (`2018-09-17T17:40:44.085000+00:00`) and plain dates (`2024-05-01`,
/// taken as midnight UTC). Anything else is `None` and stays in `extra` as text.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(Timestamp {
            seconds: dt.timestamp(),
            nanos: dt.timestamp_subsec_nanos() as i32,
        });
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let dt = date.and_hms_opt(0, 0, 0)?.and_utc();
    Some(Timestamp {
        seconds: dt.timestamp(),
        nanos: 0,
    })
}

/// RFC 3339 in UTC with microseconds, as Close writes them.
pub fn format_timestamp(field: &str, ts: &Timestamp) -> Result<String, Error> {
    let nanos = u32::try_from(ts.nanos).map_err(|_| invalid(field, "nanos out of range"))?;
    let dt = DateTime::<Utc>::from_timestamp(ts.seconds, nanos)
        .ok_or_else(|| invalid(field, "timestamp out of range"))?;
    Ok(dt.to_rfc3339_opts(SecondsFormat::Micros, false))
}

/// Inserts a non-empty string: proto3 cannot tell an empty string from "not set", so empty
/// means "leave Close's value alone".
pub fn put(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// Moves `key` out of `map` as a string; non-strings stay in the map.
pub fn take_string(map: &mut Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(Value::String(_)) => match map.remove(key) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        },
        Some(Value::Null) => {
            map.remove(key);
            String::new()
        }
        _ => String::new(),
    }
}

/// Moves `key` out of `map` as a timestamp when it parses; otherwise leaves it in the map.
pub fn take_timestamp(map: &mut Map<String, Value>, key: &str) -> Option<Timestamp> {
    let parsed = match map.get(key) {
        Some(Value::String(s)) => parse_timestamp(s)?,
        Some(Value::Null) => {
            map.remove(key);
            return None;
        }
        _ => return None,
    };
    map.remove(key);
    Some(parsed)
}

pub fn take_bool(map: &mut Map<String, Value>, key: &str) -> bool {
    match map.get(key) {
        Some(Value::Bool(b)) => {
            let b = *b;
            map.remove(key);
            b
        }
        _ => false,
    }
}

/// Page tokens of list RPCs: an opaque encoding of Close's `_skip`.
pub fn encode_page_token(skip: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("skip:{skip}"))
}

pub fn decode_page_token(token: &str) -> Result<u64, Error> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || invalid("page_token", "not a page token returned by this API");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let skip = text.strip_prefix("skip:").ok_or_else(bad)?;
    skip.parse().map_err(|_| bad())
}

/// `page_size` to Close's `_limit`: 0 means `default`, above `max` is an error.
pub fn page_limit(page_size: i32, default: u32, max: u32) -> Result<u32, Error> {
    match page_size {
        0 => Ok(default),
        n if n < 0 => Err(invalid("page_size", "must not be negative")),
        n if n as u32 > max => Err(invalid("page_size", format!("must be at most {max}"))),
        n => Ok(n as u32),
    }
}

/// The objects of a list answer `{"data": [...], "has_more": bool}` and the token of the next
/// page (empty on the last). Anything in `data` that is not an object is skipped.
pub fn list_page(body: Value, skip: u64) -> Result<(Vec<Map<String, Value>>, String), Error> {
    let Value::Object(mut map) = body else {
        return Err(bad_response("list answer is not an object"));
    };
    let has_more = map
        .get("has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(Value::Array(items)) = map.remove("data") else {
        return Err(bad_response("list answer has no data array"));
    };
    let returned = items.len() as u64;
    let objects = items
        .into_iter()
        .filter_map(|item| match item {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .collect();
    let next = if has_more && returned > 0 {
        encode_page_token(skip + returned)
    } else {
        String::new()
    };
    Ok((objects, next))
}

pub fn object(body: Value) -> Result<Map<String, Value>, Error> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(bad_response("answer is not a JSON object")),
    }
}

pub fn bad_response(what: &str) -> Error {
    Error::Close(crate::close::CloseError::BadResponse(what.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_timestamps_round_trip() {
        let ts = parse_timestamp("2018-09-17T17:40:44.085000+00:00").unwrap();
        assert_eq!(ts.seconds, 1537206044);
        assert_eq!(ts.nanos, 85_000_000);
        assert_eq!(
            format_timestamp("t", &ts).unwrap(),
            "2018-09-17T17:40:44.085000+00:00"
        );
        assert_eq!(parse_timestamp("2024-05-01").unwrap().seconds, 1714521600);
        assert_eq!(parse_timestamp("soon"), None);
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(&encode_page_token(200)).unwrap(), 200);
        assert_eq!(decode_page_token("").unwrap(), 0);
        assert!(decode_page_token("!!").is_err());
        assert!(decode_page_token(&URL_SAFE_NO_PAD.encode("skip:-1")).is_err());
    }

    #[test]
    fn integral_numbers_stay_integers() {
        let json = serde_json::json!({"a": 40, "b": 0.5, "c": [true, null, "x"]});
        let Value::Object(map) = json.clone() else {
            unreachable!()
        };
        assert_eq!(Value::Object(from_struct(&to_struct(map))), json);
    }
}
