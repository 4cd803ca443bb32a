//! The emulator's data: leads (with their contacts), tasks, activities and search cursors,
//! kept as Close's JSON objects, each belonging to one organization.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use serde_json::{Map, Value};

/// Lead statuses every organization has, first is the default: `(id, label)`.
pub(crate) const LEAD_STATUSES: [(&str, &str); 4] = [
    ("stat_1PotentialEmulator", "Potential"),
    ("stat_2BadFitEmulator", "Bad Fit"),
    ("stat_3QualifiedEmulator", "Qualified"),
    ("stat_4CustomerEmulator", "Customer"),
];

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new id: `prefix` and 43 random base62 characters, like Close's.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 43);
    id.push_str(prefix);
    for _ in 0..43 {
        id.push(char::from(BASE62[rng.random_range(0..BASE62.len())]));
    }
    id
}

/// Who is calling: the key's organization and user.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub org: String,
    pub user: String,
}

/// Rows in insertion order, found by id.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: BTreeMap<u64, Value>,
    ids: HashMap<String, u64>,
    next: u64,
}

impl Table {
    /// Adds or replaces the row with this id (a replaced row keeps its place).
    pub fn insert(&mut self, id: &str, row: Value) {
        if let Some(seq) = self.ids.get(id) {
            self.rows.insert(*seq, row);
            return;
        }
        self.next += 1;
        self.ids.insert(id.to_owned(), self.next);
        self.rows.insert(self.next, row);
    }

    /// The row with this id in organization `org`.
    pub fn get(&self, org: &str, id: &str) -> Option<&Value> {
        let row = self.rows.get(self.ids.get(id)?)?;
        (row.get("organization_id").and_then(Value::as_str) == Some(org)).then_some(row)
    }

    /// The row with this id in organization `org`, to change.
    pub fn get_mut(&mut self, org: &str, id: &str) -> Option<&mut Map<String, Value>> {
        let row = self.rows.get_mut(self.ids.get(id)?)?;
        if row.get("organization_id").and_then(Value::as_str) != Some(org) {
            return None;
        }
        row.as_object_mut()
    }

    /// Removes the row with this id from organization `org`.
    pub fn remove(&mut self, org: &str, id: &str) -> Option<Value> {
        self.get(org, id)?;
        let seq = self.ids.remove(id)?;
        self.rows.remove(&seq)
    }

    /// Organization `org`'s rows, oldest first.
    pub fn iter<'a>(&'a self, org: &'a str) -> impl DoubleEndedIterator<Item = &'a Value> + 'a {
        self.rows
            .values()
            .filter(move |row| row.get("organization_id").and_then(Value::as_str) == Some(org))
    }

    /// Organization `org`'s rows, to change.
    pub fn iter_mut<'a>(
        &'a mut self,
        org: &'a str,
    ) -> impl Iterator<Item = &'a mut Map<String, Value>> + 'a {
        self.rows.values_mut().filter_map(move |row| {
            let mine = row.get("organization_id").and_then(Value::as_str) == Some(org);
            if mine { row.as_object_mut() } else { None }
        })
    }

    /// Removes organization `org`'s rows for which `drop` is true.
    pub fn remove_where(&mut self, org: &str, drop: impl Fn(&Value) -> bool) {
        let doomed: Vec<(u64, String)> = self
            .rows
            .iter()
            .filter(|(_, row)| row.get("organization_id").and_then(Value::as_str) == Some(org))
            .filter(|(_, row)| drop(row))
            .filter_map(|(seq, row)| Some((*seq, row.get("id")?.as_str()?.to_owned())))
            .collect();
        for (seq, id) in doomed {
            self.rows.remove(&seq);
            self.ids.remove(&id);
        }
    }
}

/// A search in progress: the matching objects, fixed when the search began.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub org: String,
    /// `(object type, id)` of every result the search can page through.
    pub results: std::sync::Arc<Vec<(String, String)>>,
    /// Index of the next page's first result.
    pub offset: usize,
    pub expires: tokio::time::Instant,
}

/// Everything the emulator stores.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub leads: Table,
    pub tasks: Table,
    pub activities: Table,
    pub cursors: HashMap<String, Cursor>,
}

impl Store {
    /// Stores an activity under its own id, which it returns.
    pub fn add_activity(&mut self, mut act: Map<String, Value>) -> String {
        let id = match act.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => new_id("acti_"),
        };
        act.insert("id".into(), id.clone().into());
        self.activities.insert(&id, Value::Object(act));
        id
    }

    /// The contact with this id, from any lead of `org`.
    pub fn contact<'a>(&'a self, org: &'a str, id: &str) -> Option<&'a Value> {
        self.leads.iter(org).find_map(|lead| {
            lead.get("contacts")?
                .as_array()?
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
        })
    }
}

/// The label of a lead status id.
pub(crate) fn status_label(id: &str) -> Option<&'static str> {
    LEAD_STATUSES
        .iter()
        .find(|(sid, _)| *sid == id)
        .map(|(_, label)| *label)
}

/// The id of a lead status label (case-insensitive).
pub(crate) fn status_id(label: &str) -> Option<&'static str> {
    LEAD_STATUSES
        .iter()
        .find(|(_, l)| l.eq_ignore_ascii_case(label))
        .map(|(id, _)| *id)
}

/// `row[key]` as a string.
pub(crate) fn str_of<'a>(row: &'a Value, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

static NULL: Value = Value::Null;

/// `map[key]`, or `null` when absent (indexing a `Map` would panic).
pub(crate) fn at<'a>(map: &'a Map<String, Value>, key: &str) -> &'a Value {
    map.get(key).unwrap_or(&NULL)
}
