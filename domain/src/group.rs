//! Groups: the unit an API key is bound to. A group has one platform; its accounts serve the
//! keys bound to it, and its rate multiplier scales the recorded cost.

use serde::{Deserialize, Serialize};

use crate::Platform;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub platform: Platform,
    pub rate_multiplier: f64,
    pub account_count: i64,
    pub api_key_count: i64,
    pub created_at: String,
}

/// Body of `POST /api/v1/admin/groups` and `PUT /api/v1/admin/groups/:id` (all fields
/// optional on update).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub platform: Option<Platform>,
    pub rate_multiplier: Option<f64>,
}

/// A validated group, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFields {
    pub name: String,
    pub description: String,
    pub platform: Platform,
    pub rate_multiplier: f64,
}

/// Validation failure naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl GroupInput {
    /// Applies this input on top of `current` (or on nothing, for a create) and validates.
    pub fn resolve(self, current: Option<&GroupFields>) -> Result<GroupFields, FieldError> {
        let name = match (self.name, current) {
            (Some(n), _) => n.trim().to_owned(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => return Err(FieldError::new("name", "is required")),
        };
        if name.is_empty() || name.len() > 100 {
            return Err(FieldError::new("name", "must be 1 to 100 characters"));
        }
        let platform = match (self.platform, current) {
            (Some(p), _) => p,
            (None, Some(c)) => c.platform,
            (None, None) => return Err(FieldError::new("platform", "is required")),
        };
        let rate_multiplier = self.rate_multiplier.or(current.map(|c| c.rate_multiplier)).unwrap_or(1.0);
        if !rate_multiplier.is_finite() || rate_multiplier < 0.0 {
            return Err(FieldError::new("rate_multiplier", "must be a number ≥ 0"));
        }
        let description = self.description.or(current.map(|c| c.description.clone())).unwrap_or_default();
        Ok(GroupFields { name, description, platform, rate_multiplier })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_needs_name_and_platform_and_defaults_the_multiplier() {
        let err = GroupInput::default().resolve(None).err();
        assert_eq!(err.map(|e| e.field), Some("name"));
        let err = GroupInput { name: Some("g".into()), ..Default::default() }.resolve(None).err();
        assert_eq!(err.map(|e| e.field), Some("platform"));
        let ok = GroupInput { name: Some(" g ".into()), platform: Some(Platform::Anthropic), ..Default::default() }
            .resolve(None);
        assert_eq!(ok.map(|g| (g.name, g.rate_multiplier)), Ok(("g".into(), 1.0)));
    }

    #[test]
    fn update_keeps_what_is_not_sent_and_rejects_negative_multipliers() {
        let current =
            GroupFields { name: "a".into(), description: "d".into(), platform: Platform::Openai, rate_multiplier: 2.0 };
        let updated = GroupInput { rate_multiplier: Some(0.5), ..Default::default() }.resolve(Some(&current));
        assert_eq!(
            updated.as_ref().map(|g| (g.name.as_str(), g.platform, g.rate_multiplier)),
            Ok(("a", Platform::Openai, 0.5))
        );
        let bad = GroupInput { rate_multiplier: Some(-1.0), ..Default::default() }.resolve(Some(&current));
        assert_eq!(bad.err().map(|e| e.field), Some("rate_multiplier"));
    }
}
