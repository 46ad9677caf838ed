//! Users of the gateway and of the admin UI.

use serde::{Deserialize, Serialize};

use crate::text_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    Admin,
    User,
}
text_enum!(UserRole, "role", { Admin => "admin", User => "user" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}
text_enum!(UserStatus, "user status", { Active => "active", Disabled => "disabled" });

/// What the UI and the REST API show of a user: never the password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub role: UserRole,
    pub status: UserStatus,
    pub concurrency: i32,
}

/// A user as the Users page lists them: with how many keys they hold and today's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserListing {
    pub user: UserView,
    pub api_key_count: i64,
    /// Since midnight UTC, over all of their keys.
    pub today: crate::api_key::UsageSummary,
}

/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Normalises an email for storage and lookup (trimmed, lowercase), or says what is wrong.
pub fn validate_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let Some((local, host)) = email.split_once('@') else {
        return Err("email must contain `@`".into());
    };
    if local.is_empty() || host.is_empty() || email.len() > 254 || email.contains(char::is_whitespace) {
        return Err(format!("`{}` is not a valid email address", raw.trim()));
    }
    Ok(email)
}

pub fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("password must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(validate_email("  Admin@LocalHost "), Ok("admin@localhost".into()));
        assert!(validate_email("nobody").is_err());
        assert!(validate_email("@host").is_err());
        assert!(validate_email("a b@host").is_err());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
    }
}

/// Body of `POST /api/v1/admin/users` and `PUT /api/v1/admin/users/:id` (on update, missing
/// fields keep their value; a password is only set when sent).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub email: Option<String>,
    pub password: Option<String>,
    pub role: Option<UserRole>,
    pub concurrency: Option<i32>,
    pub status: Option<UserStatus>,
}

impl std::fmt::Debug for UserInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInput")
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("role", &self.role)
            .field("concurrency", &self.concurrency)
            .field("status", &self.status)
            .finish()
    }
}

/// Default per-user concurrency (in-flight gateway requests); ≤ 0 means unlimited.
pub const DEFAULT_USER_CONCURRENCY: i32 = 5;

/// A validated user; `password` is set when a new one must be hashed.
#[derive(Clone, PartialEq)]
pub struct UserFields {
    pub email: String,
    pub password: Option<String>,
    pub role: UserRole,
    pub concurrency: i32,
    pub status: UserStatus,
}

impl UserInput {
    pub fn resolve(self, current: Option<&UserView>) -> Result<UserFields, crate::FieldError> {
        use crate::FieldError;
        let email = match (self.email, current) {
            (Some(e), _) => validate_email(&e).map_err(|m| FieldError::new("email", m))?,
            (None, Some(c)) => c.email.clone(),
            (None, None) => return Err(FieldError::new("email", "is required")),
        };
        let password = match (self.password, current) {
            (Some(p), _) => {
                validate_password(&p).map_err(|m| FieldError::new("password", m))?;
                Some(p)
            }
            (None, Some(_)) => None,
            (None, None) => return Err(FieldError::new("password", "is required")),
        };
        Ok(UserFields {
            email,
            password,
            role: self.role.or(current.map(|c| c.role)).unwrap_or(UserRole::User),
            concurrency: self.concurrency.or(current.map(|c| c.concurrency)).unwrap_or(DEFAULT_USER_CONCURRENCY),
            status: self.status.or(current.map(|c| c.status)).unwrap_or(UserStatus::Active),
        })
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn create_requires_email_and_password_and_defaults_role() {
        let err = UserInput { email: Some("a@b".into()), ..Default::default() }.resolve(None).err();
        assert_eq!(err.map(|e| e.field), Some("password"));
        let ok = UserInput { email: Some("A@B".into()), password: Some("12345678".into()), ..Default::default() }
            .resolve(None)
            .map(|u| (u.email, u.role, u.concurrency));
        assert_eq!(ok, Ok(("a@b".into(), UserRole::User, 5)));
        let short = UserInput { email: Some("a@b".into()), password: Some("1".into()), ..Default::default() };
        assert_eq!(short.resolve(None).err().map(|e| e.field), Some("password"));
        assert!(
            !format!("{:?}", UserInput { password: Some("hunter22".into()), ..Default::default() })
                .contains("hunter22")
        );
    }
}
