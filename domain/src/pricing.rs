//! Model prices and the cost of one request.
//!
//! Owns the shape of a price entry (LiteLLM's `model_prices_and_context_window.json` format),
//! the rules that map a model name as clients send it to an entry in the table, the built-in
//! Claude prices used when the table knows nothing better, and the arithmetic that turns
//! token counts into USD.
//!
//! It does not read files, fetch the catalogue or decide the rate multiplier: the proxy reads
//! the JSON (bundled copy in `proxy/data/model_prices.json`) and deserializes it into a
//! [`PriceTable`], and billing picks the multiplier. Everything here is plain data (serde and
//! std only) and compiles to wasm.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Anthropic bills a 5-minute cache write at 1.25 × the base input price.
const CACHE_WRITE_5M_OVER_INPUT: f64 = 1.25;
/// Anthropic bills a 1-hour cache write at 2 × base input, which is 1.6 × the 5-minute price.
const CACHE_WRITE_1H_OVER_5M: f64 = 1.6;
/// Anthropic bills a cache read at 0.1 × the base input price.
const CACHE_READ_OVER_INPUT: f64 = 0.1;

/// Table prefixes tried in front of a bare model name (`gemini-2.5-pro` is listed as
/// `gemini/gemini-2.5-pro`). The empty prefix comes first: the bare name wins.
const PROVIDER_PREFIXES: [&str; 4] = ["", "anthropic/", "openai/", "gemini/"];

/// LiteLLM's documentation entry, whose values are prose rather than prices.
const SAMPLE_SPEC: &str = "sample_spec";

/// Keys returned by [`PriceTable::lookup`] for the built-in Claude prices start with this, so
/// usage records and logs show that a request was priced by family rather than by the table.
pub const FALLBACK_PREFIX: &str = "fallback/";

/// Prices of one model in USD per token, deserializable from a LiteLLM catalogue entry.
///
/// Fields missing from the entry default to zero / `None`; the `effective_*` methods apply
/// the provider rules for prices the catalogue leaves out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    #[serde(rename = "input_cost_per_token", default)]
    pub input_per_token: f64,
    #[serde(rename = "output_cost_per_token", default)]
    pub output_per_token: f64,
    /// Writing a prompt-cache entry that lives 5 minutes (Anthropic's default TTL).
    #[serde(rename = "cache_creation_input_token_cost", default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m_per_token: Option<f64>,
    /// Writing a prompt-cache entry that lives 1 hour.
    #[serde(rename = "cache_creation_input_token_cost_above_1hr", default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h_per_token: Option<f64>,
    /// Reading a cached prompt (OpenAI's and Gemini's "cached input" too).
    #[serde(rename = "cache_read_input_token_cost", default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_token: Option<f64>,
    /// LiteLLM's `litellm_provider`: `anthropic`, `openai`, `gemini`, `vertex_ai-anthropic_models`…
    #[serde(rename = "litellm_provider", default)]
    pub provider: String,
    /// LiteLLM's `mode`: `chat`, `responses`, `embedding`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// LiteLLM's `{"alias_of": "<key>"}` entries (`claude-opus-latest`). [`PriceTable::new`]
    /// replaces an alias by a copy of its target and keeps the target's key here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
}

impl ModelPrice {
    /// USD per million tokens (input, output, 5-minute cache write, cache read), as price
    /// lists quote them, for a model of `provider`.
    fn per_million(provider: &str, input: f64, output: f64, cache_write_5m: f64, cache_read: f64) -> Self {
        const MILLION: f64 = 1_000_000.0;
        Self {
            input_per_token: input / MILLION,
            output_per_token: output / MILLION,
            cache_write_5m_per_token: Some(cache_write_5m / MILLION),
            cache_write_1h_per_token: None,
            cache_read_per_token: Some(cache_read / MILLION),
            provider: provider.to_owned(),
            mode: Some("chat".to_owned()),
            max_input_tokens: None,
            max_output_tokens: None,
            alias_of: None,
        }
    }

    /// Whether Anthropic's cache pricing rules apply (any provider whose name mentions it:
    /// `anthropic`, `vertex_ai-anthropic_models`, …).
    pub fn is_anthropic(&self) -> bool {
        self.provider.contains("anthropic")
    }

    /// Price of a 5-minute cache write: the catalogue's, else 1.25 × input for Anthropic
    /// models, else 0 (other providers do not bill cache writes).
    pub fn effective_cache_write_5m(&self) -> f64 {
        match self.cache_write_5m_per_token {
            Some(price) => price,
            None if self.is_anthropic() => self.input_per_token * CACHE_WRITE_5M_OVER_INPUT,
            None => 0.0,
        }
    }

    /// Price of a 1-hour cache write: the catalogue's, else 1.6 × the 5-minute price.
    pub fn effective_cache_write_1h(&self) -> f64 {
        self.cache_write_1h_per_token.unwrap_or_else(|| self.effective_cache_write_5m() * CACHE_WRITE_1H_OVER_5M)
    }

    /// Price of a cache read: the catalogue's, else 0.1 × input for Anthropic models, else 0.
    pub fn effective_cache_read(&self) -> f64 {
        match self.cache_read_per_token {
            Some(price) => price,
            None if self.is_anthropic() => self.input_per_token * CACHE_READ_OVER_INPUT,
            None => 0.0,
        }
    }
}

/// The price catalogue, keyed by lowercase model id as LiteLLM spells it.
///
/// Deserializes straight from a LiteLLM JSON object (the bundled trimmed copy or the full
/// upstream file): the `sample_spec` documentation entry is skipped unread, unknown fields
/// are ignored, and aliases are resolved as in [`PriceTable::new`].
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    prices: HashMap<String, ModelPrice>,
}

impl From<HashMap<String, ModelPrice>> for PriceTable {
    fn from(prices: HashMap<String, ModelPrice>) -> Self {
        Self::new(prices)
    }
}

impl<'de> Deserialize<'de> for PriceTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CatalogueVisitor;

        impl<'de> Visitor<'de> for CatalogueVisitor {
            type Value = HashMap<String, ModelPrice>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a LiteLLM price catalogue: an object of model id to price entry")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut prices = HashMap::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<String>()? {
                    if key == SAMPLE_SPEC {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        let price = map.next_value::<ModelPrice>()?;
                        prices.insert(key, price);
                    }
                }
                Ok(prices)
            }
        }

        deserializer.deserialize_map(CatalogueVisitor).map(Self::new)
    }
}

impl PriceTable {
    /// Builds the table: keys are lowercased (when two differ only in case, the one that sorts
    /// first wins, so the result does not depend on hash order), `sample_spec` is dropped, and
    /// each alias entry becomes a copy of its target. An alias whose target is missing or is
    /// itself an alias is dropped rather than priced at zero.
    pub fn new(prices: HashMap<String, ModelPrice>) -> Self {
        let mut entries: Vec<_> = prices.into_iter().filter(|(key, _)| key != SAMPLE_SPEC).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut lowered: HashMap<String, ModelPrice> = HashMap::with_capacity(entries.len());
        for (key, price) in entries {
            lowered.entry(key.to_lowercase()).or_insert(price);
        }

        let resolved: Vec<(String, Option<ModelPrice>)> = lowered
            .iter()
            .filter_map(|(key, price)| {
                let target = price.alias_of.as_deref()?.to_lowercase();
                let copy = lowered
                    .get(&target)
                    .filter(|t| t.alias_of.is_none())
                    .map(|t| ModelPrice { alias_of: Some(target.clone()), ..t.clone() });
                Some((key.clone(), copy))
            })
            .collect();
        for (key, copy) in resolved {
            match copy {
                Some(price) => lowered.insert(key, price),
                None => lowered.remove(&key),
            };
        }
        Self { prices: lowered }
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.prices.iter().map(|(key, price)| (key.as_str(), price))
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// Finds the price for `model` as a client sent it, returning the key that matched.
    ///
    /// Tried in order, first hit wins:
    /// 1. the lowercased name, then its last path segment (`models/…`,
    ///    `publishers/google/models/…`, `projects/…/models/…`, `anthropic/…`);
    /// 2. for each, the name as is, then without a trailing date (`-20250929`,
    ///    `-2025-08-07`, Vertex's `@20250929`);
    /// 3. for each, bare and then with the prefixes `anthropic/`, `openai/`, `gemini/`
    ///    (only for names without a `/`);
    /// 4. for each, the name as is, with `-4-5` written `-4.5`, and with `4.5` written `4-5`.
    ///
    /// When nothing matches and the name contains `claude`, built-in family prices are used
    /// (key starts with [`FALLBACK_PREFIX`]). Any other unknown model gives `None`.
    pub fn lookup(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        candidates(model)
            .iter()
            .find_map(|candidate| self.prices.get_key_value(candidate.as_str()))
            .map(|(key, price)| (key.as_str(), price))
            .or_else(|| claude_fallback(model))
    }
}

/// Every name [`PriceTable::lookup`] tries, most specific first, without duplicates.
fn candidates(model: &str) -> Vec<String> {
    let lower = model.trim().to_lowercase();
    let mut bases = vec![lower.clone()];
    if let Some((_, last)) = lower.rsplit_once('/')
        && !last.is_empty()
    {
        bases.push(last.to_owned());
    }

    let mut out: Vec<String> = Vec::new();
    for base in bases {
        let undated = strip_date(&base);
        for name in std::iter::once(base).chain(undated) {
            let prefixes: &[&str] = if name.contains('/') { &PROVIDER_PREFIXES[..1] } else { &PROVIDER_PREFIXES };
            for prefix in prefixes {
                for variant in [name.clone(), dashed_version_to_dotted(&name), dotted_version_to_dashed(&name)] {
                    let candidate = format!("{prefix}{variant}");
                    if !out.contains(&candidate) {
                        out.push(candidate);
                    }
                }
            }
        }
    }
    out
}

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`; also `-2025-08-07` and `@20250929`
/// (Vertex). `None` when there is no such suffix.
fn strip_date(name: &str) -> Option<String> {
    if let Some((head, _)) = name.rsplit_once('@') {
        return Some(head.to_owned());
    }
    let all_digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts: Vec<&str> = name.split('-').collect();
    let n = parts.len();
    let keep = if n >= 2 && all_digits(parts[n - 1], 8) {
        n - 1
    } else if n >= 4 && all_digits(parts[n - 3], 4) && all_digits(parts[n - 2], 2) && all_digits(parts[n - 1], 2) {
        n - 3
    } else {
        return None;
    };
    parts.truncate(keep);
    (!parts.is_empty()).then(|| parts.join("-"))
}

fn is_single_digit(segment: &str) -> bool {
    segment.len() == 1 && segment.bytes().all(|b| b.is_ascii_digit())
}

/// `claude-opus-4-5-20251101` → `claude-opus-4.5-20251101`: two adjacent one-digit segments
/// are a version. Dates and other multi-digit segments are left alone.
fn dashed_version_to_dotted(name: &str) -> String {
    let parts: Vec<&str> = name.split('-').collect();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < parts.len() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(parts[i]);
        if i + 1 < parts.len() && is_single_digit(parts[i]) && is_single_digit(parts[i + 1]) {
            out.push('.');
            out.push_str(parts[i + 1]);
            i += 1;
        }
        i += 1;
    }
    out
}

/// `claude-opus-4.5` → `claude-opus-4-5`: a dot between two digits becomes a dash.
fn dotted_version_to_dashed(name: &str) -> String {
    let bytes = name.as_bytes();
    name.char_indices()
        .map(|(i, c)| {
            let between_digits = c == '.'
                && i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit());
            if between_digits { '-' } else { c }
        })
        .collect()
}

/// The built-in Claude prices, keyed `fallback/<family>`.
static CLAUDE_FALLBACKS: LazyLock<[(&str, ModelPrice); 6]> = LazyLock::new(|| {
    let anthropic = |input, output, write, read| ModelPrice::per_million("anthropic", input, output, write, read);
    [
        ("fallback/claude-opus-4.5", anthropic(5.0, 25.0, 6.25, 0.5)),
        ("fallback/claude-sonnet-4", anthropic(3.0, 15.0, 3.75, 0.3)),
        ("fallback/claude-3.5-sonnet", anthropic(3.0, 15.0, 3.75, 0.3)),
        ("fallback/claude-3.5-haiku", anthropic(1.0, 5.0, 1.25, 0.1)),
        ("fallback/claude-3-opus", anthropic(15.0, 75.0, 18.75, 1.5)),
        ("fallback/claude-3-haiku", anthropic(0.25, 1.25, 0.3, 0.03)),
    ]
});

/// Prices a Claude model the table does not list, by family and version:
/// Opus 4.5 and later (or unversioned) → Opus 4.5; Opus 3, 4 and 4.1 → Claude 3 Opus (the
/// same $15/$75); Haiku 3 → Claude 3 Haiku, any other Haiku → Claude 3.5 Haiku; Sonnet before
/// 4 → Claude 3.5 Sonnet; everything else named `claude` → Sonnet 4.
fn claude_fallback(model: &str) -> Option<(&'static str, &'static ModelPrice)> {
    let lower = model.to_lowercase();
    if !lower.contains("claude") {
        return None;
    }
    let version = claude_version(&lower);
    let family = if lower.contains("opus") {
        match version {
            Some(v) if v < (4, 5) => "fallback/claude-3-opus",
            _ => "fallback/claude-opus-4.5",
        }
    } else if lower.contains("haiku") {
        match version {
            Some((3, 0)) => "fallback/claude-3-haiku",
            _ => "fallback/claude-3.5-haiku",
        }
    } else if lower.contains("sonnet") && version.is_some_and(|v| v < (4, 0)) {
        "fallback/claude-3.5-sonnet"
    } else {
        "fallback/claude-sonnet-4"
    };
    CLAUDE_FALLBACKS.iter().find(|(key, _)| *key == family).map(|(key, price)| (*key, price))
}

/// The `(major, minor)` version in a Claude model id: the first one-digit segment and, if the
/// next segment is one digit too, that as the minor. `claude-3-5-haiku-20241022` → (3, 5),
/// `claude-sonnet-4-20250514` → (4, 0), `claude-opus-4.1` → (4, 1).
fn claude_version(lower: &str) -> Option<(u32, u32)> {
    let last = lower.rsplit('/').next().unwrap_or(lower);
    let normalised = last.replace(['.', '@', '_'], "-");
    let parts: Vec<&str> = normalised.split('-').collect();
    let at = parts.iter().position(|p| is_single_digit(p))?;
    let digit = |p: &str| p.parse::<u32>().ok();
    let major = digit(parts[at])?;
    let minor = parts.get(at + 1).filter(|p| is_single_digit(p)).and_then(|p| digit(p)).unwrap_or(0);
    Some((major, minor))
}

/// Tokens of one request as the upstream reported them, split by how they are billed.
///
/// `input` excludes cached tokens: callers subtract OpenAI's `cached_tokens` (or Gemini's
/// `cachedContentTokenCount`) from the prompt count and pass them as `cache_read`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    /// All cache-write tokens, whatever their TTL (Anthropic's `cache_creation_input_tokens`).
    pub cache_creation: u64,
    /// Cache-write tokens with the 5-minute TTL, when the upstream reports the split.
    pub cache_creation_5m: u64,
    /// Cache-write tokens with the 1-hour TTL, when the upstream reports the split.
    pub cache_creation_1h: u64,
    pub cache_read: u64,
}

/// The cost of one request in USD, by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
    pub cache_creation: f64,
    pub cache_read: f64,
    /// The sum of the parts: the list price of the request.
    pub total: f64,
    /// `total × rate_multiplier`: what the user is charged.
    pub actual: f64,
}

/// Prices `tokens` at `price`, with `actual = total × rate_multiplier`.
///
/// Cache writes are billed per TTL bucket when the upstream reported a split
/// (`cache_creation_5m + cache_creation_1h > 0`, and then `cache_creation` is ignored), else
/// all of `cache_creation` at the 5-minute price.
pub fn cost(price: &ModelPrice, tokens: &TokenCounts, rate_multiplier: f64) -> Cost {
    let count = |n: u64| n as f64;
    let input = count(tokens.input) * price.input_per_token;
    let output = count(tokens.output) * price.output_per_token;
    let cache_creation = if tokens.cache_creation_5m + tokens.cache_creation_1h > 0 {
        count(tokens.cache_creation_5m) * price.effective_cache_write_5m()
            + count(tokens.cache_creation_1h) * price.effective_cache_write_1h()
    } else {
        count(tokens.cache_creation) * price.effective_cache_write_5m()
    };
    let cache_read = count(tokens.cache_read) * price.effective_cache_read();
    let total = input + output + cache_creation + cache_read;
    Cost { input, output, cache_creation, cache_read, total, actual: total * rate_multiplier }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal within float rounding; costs are sums of a few products of small numbers.
    fn assert_usd(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1e-12 + expected.abs() * 1e-9, "got {actual}, expected {expected}");
    }

    fn price(provider: &str, input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            input_per_token: input,
            output_per_token: output,
            provider: provider.to_owned(),
            mode: Some("chat".to_owned()),
            ..ModelPrice::default()
        }
    }

    fn sonnet_4_5() -> ModelPrice {
        ModelPrice {
            cache_write_5m_per_token: Some(3.75e-6),
            cache_write_1h_per_token: Some(6e-6),
            cache_read_per_token: Some(3e-7),
            ..price("anthropic", 3e-6, 1.5e-5)
        }
    }

    fn gpt_5() -> ModelPrice {
        ModelPrice { cache_read_per_token: Some(1.25e-7), ..price("openai", 1.25e-6, 1e-5) }
    }

    /// A small table shaped like LiteLLM's: dated and undated Claude ids, OpenAI ids with and
    /// without dates, and Gemini listed only under `gemini/`.
    fn table() -> PriceTable {
        let entries = [
            ("claude-sonnet-4-5", sonnet_4_5()),
            ("claude-sonnet-4-5-20250929", sonnet_4_5()),
            ("claude-opus-4-5", price("anthropic", 5e-6, 2.5e-5)),
            ("claude-3.7-sonnet", price("anthropic", 3e-6, 1.5e-5)),
            ("gpt-5", gpt_5()),
            ("gpt-5-2025-08-07", gpt_5()),
            ("gpt-4.1", price("openai", 2e-6, 8e-6)),
            ("gemini/gemini-2.5-pro", price("gemini", 1.25e-6, 1e-5)),
            ("anthropic/claude-haiku-4-5", price("anthropic", 1e-6, 5e-6)),
        ];
        PriceTable::new(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn key_for(model: &str) -> Option<String> {
        table().lookup(model).map(|(key, _)| key.to_owned())
    }

    #[test]
    fn sonnet_4_5_with_both_cache_buckets_and_reads() {
        let tokens = TokenCounts {
            input: 1_000,
            output: 500,
            cache_creation: 3_000,
            cache_creation_5m: 2_000,
            cache_creation_1h: 1_000,
            cache_read: 10_000,
        };
        let c = cost(&sonnet_4_5(), &tokens, 1.0);
        assert_usd(c.input, 0.003);
        assert_usd(c.output, 0.0075);
        assert_usd(c.cache_creation, 2_000.0 * 3.75e-6 + 1_000.0 * 6e-6);
        assert_usd(c.cache_creation, 0.0135);
        assert_usd(c.cache_read, 0.003);
        assert_usd(c.total, 0.027);
        assert_usd(c.actual, 0.027);
    }

    #[test]
    fn cache_creation_without_split_is_billed_at_the_5m_price() {
        let tokens = TokenCounts { cache_creation: 4_000, ..TokenCounts::default() };
        let c = cost(&sonnet_4_5(), &tokens, 1.0);
        assert_usd(c.cache_creation, 0.015);
        assert_usd(c.total, 0.015);
    }

    #[test]
    fn the_split_wins_over_the_total_when_present() {
        let tokens = TokenCounts { cache_creation: 999_999, cache_creation_1h: 1_000, ..TokenCounts::default() };
        assert_usd(cost(&sonnet_4_5(), &tokens, 1.0).cache_creation, 0.006);
    }

    #[test]
    fn gpt_5_with_cached_input() {
        let tokens = TokenCounts { input: 10_000, output: 2_000, cache_read: 4_000, ..TokenCounts::default() };
        let c = cost(&gpt_5(), &tokens, 1.0);
        assert_usd(c.input, 0.0125);
        assert_usd(c.output, 0.02);
        assert_usd(c.cache_creation, 0.0);
        assert_usd(c.cache_read, 0.0005);
        assert_usd(c.total, 0.033);
    }

    #[test]
    fn multiplier_scales_actual_but_not_total() {
        let tokens = TokenCounts { input: 1_000_000, output: 100_000, ..TokenCounts::default() };
        let c = cost(&sonnet_4_5(), &tokens, 1.5);
        assert_usd(c.total, 4.5);
        assert_usd(c.actual, 6.75);
        let free = cost(&sonnet_4_5(), &tokens, 0.0);
        assert_usd(free.total, 4.5);
        assert_usd(free.actual, 0.0);
    }

    #[test]
    fn zero_tokens_cost_nothing() {
        assert_eq!(cost(&sonnet_4_5(), &TokenCounts::default(), 2.0), Cost::default());
    }

    #[test]
    fn one_hour_write_falls_back_to_1_6_times_the_5m_price() {
        let p = ModelPrice { cache_write_5m_per_token: Some(3.75e-6), ..price("anthropic", 3e-6, 1.5e-5) };
        assert_usd(p.effective_cache_write_1h(), 6e-6);
        let tokens = TokenCounts { cache_creation_5m: 1_000, cache_creation_1h: 1_000, ..TokenCounts::default() };
        assert_usd(cost(&p, &tokens, 1.0).cache_creation, 0.00375 + 0.006);
    }

    #[test]
    fn anthropic_cache_prices_fall_back_to_multiples_of_input() {
        let p = price("anthropic", 3e-6, 1.5e-5);
        assert_usd(p.effective_cache_write_5m(), 3.75e-6);
        assert_usd(p.effective_cache_write_1h(), 6e-6);
        assert_usd(p.effective_cache_read(), 3e-7);
        assert!(price("vertex_ai-anthropic_models", 3e-6, 1.5e-5).is_anthropic());
    }

    #[test]
    fn other_providers_do_not_bill_unlisted_cache_prices() {
        let p = price("openai", 2e-6, 8e-6);
        assert!(!p.is_anthropic());
        let tokens = TokenCounts { cache_creation: 1_000, cache_read: 1_000, ..TokenCounts::default() };
        let c = cost(&p, &tokens, 1.0);
        assert_usd(c.cache_creation, 0.0);
        assert_usd(c.cache_read, 0.0);
    }

    #[test]
    fn deserializes_a_litellm_entry_and_defaults_missing_fields() {
        let json = r#"{
            "claude-sonnet-4-5": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                "cache_creation_input_token_cost": 3.75e-06, "cache_creation_input_token_cost_above_1hr": 6e-06,
                "cache_read_input_token_cost": 3e-07, "litellm_provider": "anthropic", "mode": "chat",
                "max_input_tokens": 200000, "max_output_tokens": 64000, "supports_vision": true},
            "GPT-5": {"input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05, "litellm_provider": "openai"},
            "sample_spec": {"input_cost_per_token": 0.0, "max_input_tokens": "max input tokens, if known"}
        }"#;
        let table: PriceTable = serde_json::from_str(json).expect("parses");
        assert_eq!(table.len(), 2);
        let (_, sonnet) = table.lookup("claude-sonnet-4-5").expect("listed");
        assert_eq!(
            sonnet,
            &ModelPrice { max_input_tokens: Some(200_000), max_output_tokens: Some(64_000), ..sonnet_4_5() }
        );
        let (key, gpt) = table.lookup("gpt-5").expect("keys are lowercased");
        assert_eq!(key, "gpt-5");
        assert_eq!(gpt.cache_read_per_token, None);
        assert_eq!(gpt.mode, None);
    }

    #[test]
    fn aliases_resolve_to_their_target_and_dangling_ones_are_dropped() {
        let json = r#"{
            "claude-opus-4-5": {"input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05, "litellm_provider": "anthropic"},
            "claude-opus-latest": {"alias_of": "Claude-Opus-4-5"},
            "chained-latest": {"alias_of": "claude-opus-latest"},
            "gpt-latest": {"alias_of": "gpt-6"}
        }"#;
        let table: PriceTable = serde_json::from_str(json).expect("parses");
        assert_eq!(table.len(), 2);
        let (key, p) = table.lookup("claude-opus-latest").expect("alias resolves");
        assert_eq!(key, "claude-opus-latest");
        assert_usd(p.input_per_token, 5e-6);
        assert_eq!(p.provider, "anthropic");
        assert_eq!(p.alias_of.as_deref(), Some("claude-opus-4-5"));
        assert_eq!(table.lookup("gpt-latest"), None);
        assert_eq!(table.lookup("chained-latest"), None);
    }

    #[test]
    fn a_catalogue_that_is_not_an_object_is_an_error() {
        assert!(serde_json::from_str::<PriceTable>("[]").is_err());
        assert!(serde_json::from_str::<PriceTable>(r#"{"gpt-5": {"input_cost_per_token": "cheap"}}"#).is_err());
    }

    #[test]
    fn lookup_exact_and_case_insensitive() {
        assert_eq!(key_for("claude-sonnet-4-5-20250929").as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(key_for("  Claude-Sonnet-4-5  ").as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(key_for("gpt-5-2025-08-07").as_deref(), Some("gpt-5-2025-08-07"));
    }

    #[test]
    fn lookup_strips_path_prefixes() {
        for model in [
            "models/gemini-2.5-pro",
            "publishers/google/models/gemini-2.5-pro",
            "projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-pro",
            "gemini/gemini-2.5-pro",
        ] {
            assert_eq!(key_for(model).as_deref(), Some("gemini/gemini-2.5-pro"), "{model}");
        }
        assert_eq!(key_for("openrouter/anthropic/claude-opus-4-5").as_deref(), Some("claude-opus-4-5"));
    }

    #[test]
    fn lookup_tries_provider_prefixes() {
        assert_eq!(key_for("gemini-2.5-pro").as_deref(), Some("gemini/gemini-2.5-pro"));
        assert_eq!(key_for("claude-haiku-4-5").as_deref(), Some("anthropic/claude-haiku-4-5"));
        assert_eq!(key_for("claude-haiku-4-5-20251001").as_deref(), Some("anthropic/claude-haiku-4-5"));
    }

    #[test]
    fn lookup_swaps_dotted_and_dashed_versions() {
        assert_eq!(key_for("claude-opus-4.5").as_deref(), Some("claude-opus-4-5"));
        assert_eq!(key_for("claude-3-7-sonnet-20250219").as_deref(), Some("claude-3.7-sonnet"));
        assert_eq!(key_for("gpt-4-1").as_deref(), Some("gpt-4.1"));
    }

    #[test]
    fn lookup_strips_date_suffixes() {
        assert_eq!(key_for("claude-opus-4-5-20251101").as_deref(), Some("claude-opus-4-5"));
        assert_eq!(key_for("claude-opus-4.5-20251101").as_deref(), Some("claude-opus-4-5"));
        assert_eq!(key_for("gpt-5-2026-01-15").as_deref(), Some("gpt-5"));
        assert_eq!(key_for("claude-opus-4-5@20251101").as_deref(), Some("claude-opus-4-5"));
    }

    #[test]
    fn candidate_helpers() {
        assert_eq!(strip_date("claude-sonnet-4-5-20250929").as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(strip_date("gpt-5-2025-08-07").as_deref(), Some("gpt-5"));
        assert_eq!(strip_date("gpt-4-0613"), None);
        assert_eq!(strip_date("gpt-5"), None);
        assert_eq!(strip_date("20250929"), None);
        assert_eq!(dashed_version_to_dotted("claude-3-5-sonnet-20241022"), "claude-3.5-sonnet-20241022");
        assert_eq!(dashed_version_to_dotted("gpt-5-2025-08-07"), "gpt-5-2025-08-07");
        assert_eq!(dotted_version_to_dashed("claude-opus-4.5"), "claude-opus-4-5");
        assert_eq!(dotted_version_to_dashed("v.1.x."), "v.1.x.");
        let all = candidates("Claude-Opus-4.5");
        assert_eq!(all.first().map(String::as_str), Some("claude-opus-4.5"));
        assert!(all.iter().any(|c| c == "anthropic/claude-opus-4-5"));
        assert_eq!(all.len(), all.iter().collect::<std::collections::HashSet<_>>().len(), "no duplicates");
    }

    #[test]
    fn claude_fallbacks_by_family() {
        let cases = [
            ("claude-opus-4-6-20990101-preview", "fallback/claude-opus-4.5", 5.0, 25.0, 6.25, 0.5),
            ("claude-opus-4-1-20250805", "fallback/claude-3-opus", 15.0, 75.0, 18.75, 1.5),
            ("claude-3-opus-20240229", "fallback/claude-3-opus", 15.0, 75.0, 18.75, 1.5),
            ("claude-sonnet-4-20250514", "fallback/claude-sonnet-4", 3.0, 15.0, 3.75, 0.3),
            ("claude-sonnet-4.7", "fallback/claude-sonnet-4", 3.0, 15.0, 3.75, 0.3),
            ("claude-3-5-sonnet-20241022", "fallback/claude-3.5-sonnet", 3.0, 15.0, 3.75, 0.3),
            ("claude-3-5-haiku-20241022", "fallback/claude-3.5-haiku", 1.0, 5.0, 1.25, 0.1),
            ("claude-3-haiku-20240307", "fallback/claude-3-haiku", 0.25, 1.25, 0.3, 0.03),
            ("anthropic.claude-instant-v1", "fallback/claude-sonnet-4", 3.0, 15.0, 3.75, 0.3),
            ("CLAUDE", "fallback/claude-sonnet-4", 3.0, 15.0, 3.75, 0.3),
        ];
        let table = table();
        for (model, expected_key, input, output, write, read) in cases {
            let (key, p) = table.lookup(model).unwrap_or_else(|| panic!("{model} has a fallback"));
            assert_eq!(key, expected_key, "{model}");
            assert!(key.starts_with(FALLBACK_PREFIX));
            assert_usd(p.input_per_token * 1e6, input);
            assert_usd(p.output_per_token * 1e6, output);
            assert_usd(p.effective_cache_write_5m() * 1e6, write);
            assert_usd(p.effective_cache_read() * 1e6, read);
            assert!(p.is_anthropic());
        }
    }

    #[test]
    fn fallback_only_when_the_table_has_nothing() {
        assert_eq!(key_for("claude-opus-4-5").as_deref(), Some("claude-opus-4-5"));
        assert_eq!(PriceTable::default().lookup("claude-opus-4-5").map(|(k, _)| k), Some("fallback/claude-opus-4.5"));
    }

    #[test]
    fn unknown_non_claude_models_have_no_price() {
        for model in ["llama-3-70b", "gpt-99", "gemini-9-ultra", "", "/", "models/"] {
            assert_eq!(key_for(model), None, "{model}");
        }
    }

    #[test]
    fn claude_versions() {
        assert_eq!(claude_version("claude-3-5-haiku-20241022"), Some((3, 5)));
        assert_eq!(claude_version("claude-sonnet-4-20250514"), Some((4, 0)));
        assert_eq!(claude_version("claude-opus-4.1"), Some((4, 1)));
        assert_eq!(claude_version("vertex_ai/claude-opus-4-5@20251101"), Some((4, 5)));
        assert_eq!(claude_version("claude-opus"), None);
    }

    /// The bundled catalogue parses and prices the models clients ask for most.
    #[test]
    fn bundled_catalogue_resolves_current_models() {
        let json = include_str!("../../proxy/data/model_prices.json");
        let table: PriceTable = serde_json::from_str(json).expect("bundled catalogue parses");
        assert!(table.len() > 150, "only {} entries", table.len());
        let cases = [
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
            ("claude-sonnet-4-5", "claude-sonnet-4-5"),
            ("claude-opus-4-5", "claude-opus-4-5"),
            ("claude-opus-4.5", "claude-opus-4-5"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
            ("gpt-5", "gpt-5"),
            ("gpt-5-2025-08-07", "gpt-5-2025-08-07"),
            ("gpt-5.1-codex", "gpt-5.1-codex"),
            ("gemini-2.5-pro", "gemini/gemini-2.5-pro"),
            ("models/gemini-2.5-flash", "gemini/gemini-2.5-flash"),
        ];
        for (model, expected) in cases {
            let (key, p) = table.lookup(model).unwrap_or_else(|| panic!("{model} is priced"));
            assert_eq!(key, expected, "{model}");
            assert!(p.input_per_token > 0.0 && p.output_per_token > 0.0, "{model}");
        }
        let (_, sonnet) = table.lookup("claude-sonnet-4-5").expect("listed");
        assert_usd(sonnet.input_per_token, 3e-6);
        assert_usd(sonnet.effective_cache_write_1h(), 6e-6);
    }
}
