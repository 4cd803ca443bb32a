//! Request validation: ids, required fields and lengths are checked before anything reaches
//! Close, and every violation names its field.

use crate::error::{Error, FieldViolation};

/// Longest id we accept; Close's are about 50 characters.
const MAX_ID_LEN: usize = 100;
/// Longest free text field we forward (a note, an email body).
pub const MAX_TEXT_LEN: usize = 1 << 20;
/// Longest short field (a name, a subject, a status).
pub const MAX_SHORT_LEN: usize = 4096;

/// Collects violations so that a caller learns about every bad field at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// A required id with Close's prefix for this kind of object, e.g. `lead_`.
    pub fn id(&mut self, field: &str, value: &str, prefix: &str) {
        if value.is_empty() {
            self.add(field, "is required");
            return;
        }
        self.optional_id(field, value, prefix);
    }

    /// An id that may be empty, but when present has the right prefix and charset.
    pub fn optional_id(&mut self, field: &str, value: &str, prefix: &str) {
        if value.is_empty() {
            return;
        }
        if let Some(problem) = id_problem(value, prefix) {
            self.add(field, problem);
        }
    }

    pub fn required(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "is required");
        }
    }

    pub fn max_len(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.add(field, format!("is longer than {max} bytes"));
        }
    }

    /// The value must be one of `allowed` (or empty when `allow_empty`).
    pub fn one_of(&mut self, field: &str, value: &str, allowed: &[&str], allow_empty: bool) {
        if value.is_empty() && allow_empty {
            return;
        }
        if !allowed.contains(&value) {
            self.add(field, format!("must be one of: {}", allowed.join(", ")));
        }
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidArgument(self.0))
    }
}

fn id_problem(value: &str, prefix: &str) -> Option<String> {
    let Some(rest) = value.strip_prefix(prefix) else {
        return Some(format!("must start with \"{prefix}\""));
    };
    if rest.is_empty() || value.len() > MAX_ID_LEN {
        return Some(format!(
            "must be \"{prefix}\" followed by 1 to {} letters and digits",
            MAX_ID_LEN - prefix.len()
        ));
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(format!(
            "may hold only letters and digits after \"{prefix}\""
        ));
    }
    None
}

/// Just the check, for one field.
pub fn check_id(field: &str, value: &str, prefix: &str) -> Result<(), Error> {
    let mut v = Violations::new();
    v.id(field, value, prefix);
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_need_prefix_and_base62() {
        assert!(check_id("id", "lead_abc123", "lead_").is_ok());
        for bad in [
            "",
            "lead_",
            "task_abc",
            "lead_ab/../x",
            "lead_ab%2F",
            "lead_é",
        ] {
            let Err(Error::InvalidArgument(v)) = check_id("id", bad, "lead_") else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(v[0].field, "id");
        }
    }
}
