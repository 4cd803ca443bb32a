//! The endpoint-group table: which of Close's rate-limit buckets a (method, path) falls into.
//!
//! Close does not publish its groups, so the table is configuration: rules of (methods, path
//! pattern) → group, first match wins, plus a conservative default limit per group that is used
//! only until Close's headers say otherwise. The file format is JSON (no extra dependency) and is
//! documented in `docs/limiter.md`.

use std::path::Path;
use std::time::Duration;

use http::Method;
use serde::Deserialize;

/// Resources whose reads and writes get their own groups in the built-in table.
const RESOURCES: &[&str] = &[
    "lead",
    "contact",
    "task",
    "activity",
    "opportunity",
    "user",
    "me",
    "status",
    "custom_field",
    "pipeline",
    "email_template",
    "saved_search",
    "organization",
    "export",
    "report",
    "sequence",
    "webhook",
];

/// Group of any read that no rule names.
pub const OTHER_READ: &str = "other.read";
/// Group of any write that no rule names.
pub const OTHER_WRITE: &str = "other.write";

/// One endpoint group and its conservative default limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupDef {
    pub name: String,
    /// Requests per window assumed when Close sends no rate-limit header at all.
    pub limit: u64,
    /// The window assumed with `limit`, in seconds.
    #[serde(rename = "window_secs", deserialize_with = "secs")]
    pub window: Duration,
}

/// One rule: methods (empty = any) and a path pattern relative to `/api/v1`.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    methods: Vec<Method>,
    pattern: Vec<Segment>,
    group: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**` (last only): any number of segments, including none.
    Rest,
}

/// The table of rules and groups.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTable {
    rules: Vec<Rule>,
    groups: Vec<GroupDef>,
}

/// Errors from loading a group file.
#[derive(Debug, thiserror::Error)]
pub enum GroupFileError {
    #[error("cannot read group file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("group file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("group file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    groups: Vec<GroupDef>,
    #[serde(default)]
    rules: Vec<FileRule>,
    /// When true (the default) the built-in table follows the file's rules.
    #[serde(default = "yes")]
    include_defaults: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    #[serde(default)]
    methods: Vec<String>,
    path: String,
    group: String,
}

fn yes() -> bool {
    true
}

fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value = f64::deserialize(d)?;
    if !value.is_finite() || !(0.001..=86_400.0).contains(&value) {
        return Err(serde::de::Error::custom(
            "window_secs must be in 0.001..=86400",
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

impl Default for GroupTable {
    /// Reads, writes and search separated per resource; conservative limits (Close grants
    /// about 40 rps per key for CRUD and 16 rps for search).
    fn default() -> Self {
        let second = Duration::from_secs(1);
        let mut table = GroupTable {
            rules: Vec::new(),
            groups: Vec::new(),
        };
        table.push_group("search", 8, second);
        table.push_rule(&[Method::POST], "/data/search/", "search");
        for resource in RESOURCES {
            let read = format!("{resource}.read");
            let write = format!("{resource}.write");
            table.push_group(&read, 20, second);
            table.push_group(&write, 20, second);
            let pattern = format!("/{resource}/**");
            table.push_rule(&[Method::GET, Method::HEAD], &pattern, &read);
            table.push_rule(&[], &pattern, &write);
        }
        table.push_group(OTHER_READ, 10, second);
        table.push_group(OTHER_WRITE, 10, second);
        table
    }
}

impl GroupTable {
    /// A table from a JSON file; see `docs/limiter.md` for the format.
    pub fn from_file(path: impl AsRef<Path>) -> Result<GroupTable, GroupFileError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GroupFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_json(&text).map_err(|err| match err {
            GroupFileError::Parse { source, .. } => GroupFileError::Parse {
                path: shown.clone(),
                source,
            },
            GroupFileError::Invalid { message, .. } => GroupFileError::Invalid {
                path: shown.clone(),
                message,
            },
            other => other,
        })
    }

    /// A table from the JSON text of a group file.
    pub fn from_json(text: &str) -> Result<GroupTable, GroupFileError> {
        let file: FileFormat =
            serde_json::from_str(text).map_err(|source| GroupFileError::Parse {
                path: String::new(),
                source,
            })?;
        let invalid = |message: String| GroupFileError::Invalid {
            path: String::new(),
            message,
        };
        let mut table = GroupTable {
            rules: Vec::new(),
            groups: Vec::new(),
        };
        for group in file.groups {
            if group.name.is_empty() || group.limit == 0 {
                return Err(invalid(format!(
                    "group {:?} needs a name and a limit above 0",
                    group.name
                )));
            }
            table.groups.retain(|g| g.name != group.name);
            table.groups.push(group);
        }
        for rule in file.rules {
            let mut methods = Vec::new();
            for method in &rule.methods {
                let parsed =
                    Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                        invalid(format!("rule for {}: bad method {method:?}", rule.path))
                    })?;
                methods.push(parsed);
            }
            let pattern = parse_pattern(&rule.path)
                .ok_or_else(|| invalid(format!("bad path pattern {:?}", rule.path)))?;
            table.rules.push(Rule {
                methods,
                pattern,
                group: rule.group,
            });
        }
        if file.include_defaults {
            let defaults = GroupTable::default();
            for group in defaults.groups {
                if table.group(&group.name).is_none() {
                    table.groups.push(group);
                }
            }
            table.rules.extend(defaults.rules);
        }
        for rule in &table.rules {
            if table.group(&rule.group).is_none() {
                return Err(invalid(format!(
                    "rule {:?} names group {:?}, which has no entry in \"groups\"",
                    render(&rule.pattern),
                    rule.group
                )));
            }
        }
        for fallback in [OTHER_READ, OTHER_WRITE] {
            if table.group(fallback).is_none() {
                table.push_group(fallback, 10, Duration::from_secs(1));
            }
        }
        Ok(table)
    }

    /// The group of a request; `path` is relative to `/api/v1`, e.g. `/lead/lead_abc/`.
    /// Unmatched reads go to [`OTHER_READ`], unmatched writes to [`OTHER_WRITE`].
    pub fn group_for(&self, method: &Method, path: &str) -> &str {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for rule in &self.rules {
            if !rule.methods.is_empty() && !rule.methods.contains(method) {
                continue;
            }
            if matches(&rule.pattern, &segments) {
                return &rule.group;
            }
        }
        if method == Method::GET || method == Method::HEAD {
            OTHER_READ
        } else {
            OTHER_WRITE
        }
    }

    /// The definition of a group by name.
    pub fn group(&self, name: &str) -> Option<&GroupDef> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Every group, in table order.
    pub fn groups(&self) -> &[GroupDef] {
        &self.groups
    }

    fn push_group(&mut self, name: &str, limit: u64, window: Duration) {
        self.groups.push(GroupDef {
            name: name.to_owned(),
            limit,
            window,
        });
    }

    fn push_rule(&mut self, methods: &[Method], pattern: &str, group: &str) {
        let Some(pattern) = parse_pattern(pattern) else {
            return;
        };
        self.rules.push(Rule {
            methods: methods.to_vec(),
            pattern,
            group: group.to_owned(),
        });
    }
}

fn parse_pattern(text: &str) -> Option<Vec<Segment>> {
    if !text.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    let mut pattern = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let segment = match *part {
            "**" if i + 1 == parts.len() => Segment::Rest,
            "**" => return None,
            "*" => Segment::One,
            literal => Segment::Literal(literal.to_owned()),
        };
        pattern.push(segment);
    }
    Some(pattern)
}

fn matches(pattern: &[Segment], segments: &[&str]) -> bool {
    let mut i = 0;
    for segment in pattern {
        match segment {
            Segment::Rest => return true,
            Segment::One if i < segments.len() => {}
            Segment::Literal(lit) if segments.get(i) == Some(&lit.as_str()) => {}
            _ => return false,
        }
        i += 1;
    }
    i == segments.len()
}

fn render(pattern: &[Segment]) -> String {
    let mut out = String::new();
    for segment in pattern {
        out.push('/');
        out.push_str(match segment {
            Segment::Literal(lit) => lit,
            Segment::One => "*",
            Segment::Rest => "**",
        });
    }
    out.push('/');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_separate_reads_writes_and_search() {
        let table = GroupTable::default();
        assert_eq!(
            table.group_for(&Method::GET, "/lead/lead_abc/"),
            "lead.read"
        );
        assert_eq!(table.group_for(&Method::GET, "/lead/"), "lead.read");
        assert_eq!(
            table.group_for(&Method::PUT, "/lead/lead_abc/"),
            "lead.write"
        );
        assert_eq!(table.group_for(&Method::POST, "/lead/merge/"), "lead.write");
        assert_eq!(
            table.group_for(&Method::POST, "/activity/note/"),
            "activity.write"
        );
        assert_eq!(
            table.group_for(&Method::GET, "/task/?lead_id=x"),
            "task.read"
        );
        assert_eq!(table.group_for(&Method::POST, "/data/search/"), "search");
        assert_eq!(table.group_for(&Method::GET, "/data/search/"), OTHER_READ);
        assert_eq!(table.group_for(&Method::DELETE, "/nothing/x/"), OTHER_WRITE);
        assert_eq!(table.group("search").map(|g| g.limit), Some(8));
    }

    #[test]
    fn file_rules_come_before_defaults_and_may_share_a_group() {
        let table = GroupTable::from_json(
            r#"{
              "groups": [{"name": "crud.write", "limit": 40, "window_secs": 1}],
              "rules": [
                {"methods": ["post", "PUT", "DELETE"], "path": "/lead/**", "group": "crud.write"},
                {"methods": ["POST"], "path": "/task/*/", "group": "crud.write"},
                {"path": "/activity/**", "group": "crud.write"}
              ]
            }"#,
        )
        .expect("valid file");
        assert_eq!(table.group_for(&Method::POST, "/lead/"), "crud.write");
        assert_eq!(
            table.group_for(&Method::POST, "/task/task_1/"),
            "crud.write"
        );
        assert_eq!(table.group_for(&Method::POST, "/task/"), "task.write");
        assert_eq!(table.group_for(&Method::GET, "/activity/"), "crud.write");
        assert_eq!(table.group_for(&Method::GET, "/lead/"), "lead.read");
    }

    #[test]
    fn bad_files_are_rejected_with_a_reason() {
        for (text, expect) in [
            (r#"{"rules": [{"path": "/x/", "group": "nope"}]}"#, "nope"),
            (
                r#"{"rules": [{"path": "x", "group": "search"}]}"#,
                "pattern",
            ),
            (
                r#"{"rules": [{"path": "/**/x/", "group": "search"}]}"#,
                "pattern",
            ),
            (
                r#"{"groups": [{"name": "a", "limit": 0, "window_secs": 1}]}"#,
                "limit",
            ),
            (
                r#"{"groups": [{"name": "a", "limit": 1, "window_secs": -1}]}"#,
                "window",
            ),
            (r#"{"grups": []}"#, "unknown field"),
        ] {
            let err = GroupTable::from_json(text).expect_err(text).to_string();
            assert!(err.contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn without_defaults_only_the_file_and_fallbacks_remain() {
        let table = GroupTable::from_json(
            r#"{"include_defaults": false,
                "groups": [{"name": "all", "limit": 5, "window_secs": 2}],
                "rules": [{"path": "/**", "group": "all"}]}"#,
        )
        .expect("valid file");
        assert_eq!(table.group_for(&Method::GET, "/lead/"), "all");
        assert_eq!(table.groups().len(), 3);
    }
}
