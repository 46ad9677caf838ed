//! The Models page: what each group offers, how accounts rename models, and the prices usage
//! is billed with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Platform;

/// The models a group lists on `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupModels {
    pub group_id: i64,
    pub name: String,
    pub platform: Platform,
    pub models: Vec<String>,
    /// True when the list is the platform's built-in one (no account maps a model name).
    pub built_in: bool,
}

/// One account's model mapping (requested name → upstream name; `*` wildcards allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountMapping {
    pub account_id: i64,
    pub name: String,
    pub platform: Platform,
    pub mapping: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelsOverview {
    pub groups: Vec<GroupModels>,
    pub accounts: Vec<AccountMapping>,
    /// Where the price table comes from, and how many models it prices.
    pub price_source: String,
    pub price_count: usize,
}

/// One row of the price table, in USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceRow {
    pub model: String,
    pub provider: String,
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
    pub max_input_tokens: Option<u64>,
}

/// Parses the mapping editor's text: one `requested = upstream` pair per line; blank lines
/// and lines starting with `#` are skipped. Errors name the line.
pub fn parse_mapping(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut mapping = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (from, to) = line
            .split_once('=')
            .map(|(f, t)| (f.trim(), t.trim()))
            .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            .ok_or_else(|| format!("model_mapping: line {} must read `requested = upstream`", n + 1))?;
        if mapping.insert(from.to_owned(), to.to_owned()).is_some() {
            return Err(format!("model_mapping: line {}: `{from}` is mapped twice", n + 1));
        }
    }
    Ok(mapping)
}

/// The editor's text for a mapping, the inverse of [`parse_mapping`].
pub fn format_mapping(mapping: &BTreeMap<String, String>) -> String {
    mapping.iter().map(|(from, to)| format!("{from} = {to}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_text_round_trips_and_names_bad_lines() {
        let text = "# aliases\nclaude-sonnet = claude-sonnet-4-5\n\n  gpt-* =gpt-5  \n";
        let mapping = parse_mapping(text).unwrap();
        assert_eq!(mapping["claude-sonnet"], "claude-sonnet-4-5");
        assert_eq!(mapping["gpt-*"], "gpt-5");
        assert_eq!(parse_mapping(&format_mapping(&mapping)).unwrap(), mapping);
        assert_eq!(
            parse_mapping("a = b\nnonsense").unwrap_err(),
            "model_mapping: line 2 must read `requested = upstream`"
        );
        assert!(parse_mapping("a = b\na = c").unwrap_err().contains("mapped twice"));
        assert!(parse_mapping(" = b").is_err());
    }
}
