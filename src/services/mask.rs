//! AIP-134 updates: turns a resource and its `update_mask` into the partial body of Close's
//! PUT, so that only masked fields are sent and a masked field without a value is unset.

use std::collections::HashMap;

use prost_types::{FieldMask, Struct, Value as PbValue};
use serde_json::{Map, Value};

use super::convert::from_pb_value;
use crate::error::{Error, invalid};

/// The updatable fields of a resource: proto path → Close's attribute name.
pub struct MaskSpec {
    pub fields: &'static [(&'static str, &'static str)],
    /// Whether `custom.cf_...` paths are allowed.
    pub custom: bool,
}

/// What the caller sent, as Close attributes. `typed` holds the typed fields already
/// rendered under Close's names; an absent key means "no value".
pub struct Update<'a> {
    pub typed: Map<String, Value>,
    pub custom: Option<&'a HashMap<String, PbValue>>,
    pub extra: Option<&'a Struct>,
}

pub fn patch(
    mask: Option<&FieldMask>,
    spec: &MaskSpec,
    update: &Update<'_>,
) -> Result<Map<String, Value>, Error> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return Err(invalid(
            "update_mask",
            "is required: name the fields to change",
        ));
    }
    let mut body = Map::new();
    for path in paths {
        if let Some((_, key)) = spec.fields.iter().find(|(p, _)| p == path) {
            let value = update.typed.get(*key).cloned().unwrap_or(Value::Null);
            body.insert((*key).to_owned(), value);
            continue;
        }
        if let Some(id) = path.strip_prefix("custom.") {
            if !spec.custom {
                return Err(unknown(path));
            }
            check_custom_id(id)?;
            let value = update
                .custom
                .and_then(|c| c.get(id))
                .map(from_pb_value)
                .unwrap_or(Value::Null);
            body.insert(format!("custom.{id}"), value);
            continue;
        }
        if let Some(key) = path.strip_prefix("extra.") {
            let typed_key = spec.fields.iter().any(|(_, k)| *k == key);
            if key.is_empty() || typed_key || key.starts_with("custom") || key == "id" {
                return Err(invalid(
                    "update_mask",
                    format!("\"{path}\" must name an attribute without a typed field"),
                ));
            }
            let value = update
                .extra
                .and_then(|e| e.fields.get(key))
                .map(from_pb_value)
                .unwrap_or(Value::Null);
            body.insert(key.to_owned(), value);
            continue;
        }
        return Err(unknown(path));
    }
    Ok(body)
}

fn unknown(path: &str) -> Error {
    invalid(
        "update_mask",
        format!("\"{path}\" is not an updatable field"),
    )
}

fn check_custom_id(id: &str) -> Result<(), Error> {
    let ok = id
        .strip_prefix("cf_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        return Ok(());
    }
    Err(invalid(
        "update_mask",
        format!("custom field path must be custom.cf_<id>, got \"custom.{id}\""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: MaskSpec = MaskSpec {
        fields: &[("name", "name"), ("description", "description")],
        custom: true,
    };

    fn mask(paths: &[&str]) -> FieldMask {
        FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn only_masked_fields_are_sent_and_empty_ones_unset() {
        let mut typed = Map::new();
        typed.insert("name".into(), json!("Acme"));
        let custom = HashMap::new();
        let update = Update {
            typed,
            custom: Some(&custom),
            extra: None,
        };
        let body = patch(
            Some(&mask(&["description", "custom.cf_abc", "extra.url2"])),
            &SPEC,
            &update,
        )
        .unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"description": null, "custom.cf_abc": null, "url2": null})
        );
    }

    #[test]
    fn missing_or_unknown_paths_are_rejected() {
        let update = Update {
            typed: Map::new(),
            custom: None,
            extra: None,
        };
        assert!(patch(None, &SPEC, &update).is_err());
        assert!(patch(Some(&mask(&["status"])), &SPEC, &update).is_err());
        assert!(patch(Some(&mask(&["custom.cf_a/b"])), &SPEC, &update).is_err());
        assert!(patch(Some(&mask(&["extra.name"])), &SPEC, &update).is_err());
    }
}
