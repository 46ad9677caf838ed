//! Plain types shared by the browser (wasm) and the server: identifiers, enums that are
//! stored as text, DTOs that cross the server-function boundary, and input validation.
//!
//! Nothing here may depend on sqlx, tokio or anything else that does not compile to wasm.

pub mod account;
pub mod api_key;
pub mod dashboard;
pub mod group;
pub mod models;
pub mod oauth;
pub mod pricing;
pub mod proxies;
pub mod settings;
pub mod usage;
pub mod user;

pub use account::{
    AccountFields, AccountInput, AccountKind, AccountStatus, AccountTestResult, AccountView, CredentialsInput, Platform,
};
pub use api_key::{ApiKeyInput, ApiKeyStatus, ApiKeyView, CreatedApiKey};
pub use dashboard::{AccountCounts, DashboardStats, UsageBucket, UsageTrend};
pub use group::{FieldError, GroupFields, GroupInput, GroupView};
pub use usage::{NamedId, Page, UsageFilterOptions, UsageQuery, UsageTotals, UsageView};
pub use user::{UserFields, UserInput, UserRole, UserStatus, UserView, validate_email, validate_password};

/// A value read from storage or input that does not name a known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

/// Implements `as_str`, `FromStr` and `Display` for a fieldless enum stored as text, so the
/// database, the REST API and the UI all spell the variants the same way.
macro_rules! text_enum {
    ($name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::UnknownVariant { kind: $kind, value: other.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Option<i64>>, s: S) -> Result<S::Ok, S::Error> {
        value.flatten().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }
}
