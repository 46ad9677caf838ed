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
