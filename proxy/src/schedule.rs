//! Account selection for one request: which accounts of the caller's group may serve the
//! requested model right now, in the order they should be tried. Pure: the caller supplies
//! the snapshot, the run-time cooldowns and slot loads from the `Coordinator`, and the clock.
//!
//! Order: the sticky account first (when usable), then lowest priority value, then lowest
//! load (in-flight / concurrency), then least recently used (never used first).

use std::collections::{BTreeMap, HashMap, HashSet};

use domain::AccountStatus;
use time::OffsetDateTime;

use crate::snapshot::{AccountEntry, GroupEntry, Snapshot};

/// One account to try, with the model name to send upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub account_id: i64,
    pub upstream_model: String,
}

/// Why no account can take the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Unavailable {
    /// No account of the group serves this model at all.
    NoModel,
    /// Accounts exist but all are cooling down; the earliest is free again at `until`.
    CoolingDown { until: OffsetDateTime },
    /// Accounts exist but none is usable (disabled, error, paused, or already tried).
    NoAccount,
}

/// Run-time state per account from the coordinator.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// End of the latest cooldown set at run time (rate limit or overload).
    pub cooldown_until: Option<OffsetDateTime>,
    /// Requests in flight on this account (all instances).
    pub in_flight: u32,
    /// Last time this instance picked the account (newer than the snapshot's value).
    pub last_used: Option<OffsetDateTime>,
}

/// The upstream name for `requested` under `mapping`, or `None` when the account does not
/// serve it. An empty mapping serves every model unchanged; keys may end in `*` to match a
/// prefix (the longest matching prefix wins; exact keys beat patterns).
pub fn map_model(mapping: &BTreeMap<String, String>, requested: &str) -> Option<String> {
    if mapping.is_empty() {
        return Some(requested.to_owned());
    }
    if let Some(target) = mapping.get(requested) {
        return Some(target.clone());
    }
    mapping
        .iter()
        .filter_map(|(pattern, target)| pattern.strip_suffix('*').map(|prefix| (prefix, target)))
        .filter(|(prefix, _)| requested.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, target)| if target == "*" { requested.to_owned() } else { target.clone() })
}

fn cooling_until(account: &AccountEntry, live: Option<&Live>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    [account.rate_limit_reset_at, account.overload_until, live.and_then(|l| l.cooldown_until)]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .max()
}

/// Orders the usable accounts of `group` for `model`.
pub fn candidates(
    snapshot: &Snapshot,
    group: &GroupEntry,
    model: &str,
    sticky: Option<i64>,
    excluded: &HashSet<i64>,
    live: &HashMap<i64, Live>,
    now: OffsetDateTime,
) -> Result<Vec<Candidate>, Unavailable> {
    let members: Vec<&AccountEntry> = group
        .account_ids
        .iter()
        .filter_map(|id| snapshot.accounts.get(id))
        .filter(|a| a.platform == group.platform)
        .collect();
    let serving: Vec<(&AccountEntry, String)> =
        members.iter().filter_map(|a| map_model(&a.model_mapping, model).map(|m| (*a, m))).collect();
    if serving.is_empty() {
        return Err(Unavailable::NoModel);
    }
    let healthy: Vec<&(&AccountEntry, String)> = serving
        .iter()
        .filter(|(a, _)| a.status == AccountStatus::Active && a.schedulable && !excluded.contains(&a.id))
        .collect();
    let mut usable: Vec<&(&AccountEntry, String)> =
        healthy.iter().copied().filter(|(a, _)| cooling_until(a, live.get(&a.id), now).is_none()).collect();
    if usable.is_empty() {
        let earliest = healthy.iter().filter_map(|(a, _)| cooling_until(a, live.get(&a.id), now)).min();
        return Err(earliest.map_or(Unavailable::NoAccount, |until| Unavailable::CoolingDown { until }));
    }
    let load = |a: &AccountEntry| {
        let in_flight = live.get(&a.id).map_or(0, |l| l.in_flight);
        if a.concurrency <= 0 { 0.0 } else { f64::from(in_flight) / f64::from(a.concurrency) }
    };
    let last_used = |a: &AccountEntry| a.last_used_at.max(live.get(&a.id).and_then(|l| l.last_used));
    usable.sort_by(|(a, _), (b, _)| {
        let sticky_first = (Some(b.id) == sticky).cmp(&(Some(a.id) == sticky));
        sticky_first
            .then(a.priority.cmp(&b.priority))
            .then(load(a).total_cmp(&load(b)))
            .then(last_used(a).cmp(&last_used(b)))
            .then(a.id.cmp(&b.id))
    });
    Ok(usable.into_iter().map(|(a, m)| Candidate { account_id: a.id, upstream_model: m.clone() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AccountKind, Platform};
    use time::Duration;

    fn account(id: i64, priority: i32) -> AccountEntry {
        AccountEntry {
            id,
            name: format!("a{id}"),
            platform: Platform::Anthropic,
            kind: AccountKind::ApiKey,
            api_key: "k".into(),
            base_url: None,
            model_mapping: BTreeMap::new(),
            concurrency: 2,
            priority,
            status: AccountStatus::Active,
            schedulable: true,
            rate_limit_reset_at: None,
            overload_until: None,
            last_used_at: None,
            proxy: None,
            oauth: None,
        }
    }

    fn setup(accounts: Vec<AccountEntry>) -> (Snapshot, GroupEntry) {
        let mut s = Snapshot::default();
        let ids = accounts.iter().map(|a| a.id).collect();
        for a in accounts {
            s.accounts.insert(a.id, a);
        }
        let g = GroupEntry {
            id: 1,
            name: "g".into(),
            platform: Platform::Anthropic,
            rate_multiplier: 1.0,
            account_ids: ids,
        };
        (s, g)
    }

    fn order(r: Result<Vec<Candidate>, Unavailable>) -> Vec<i64> {
        r.map(|c| c.into_iter().map(|c| c.account_id).collect()).unwrap_or_default()
    }

    #[test]
    fn mapping_exact_then_longest_prefix() {
        let m: BTreeMap<String, String> =
            [("claude-*", "claude-x"), ("claude-sonnet-*", "claude-s"), ("gpt-4", "gpt-4o")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
        assert_eq!(map_model(&m, "gpt-4").as_deref(), Some("gpt-4o"));
        assert_eq!(map_model(&m, "claude-sonnet-4-5").as_deref(), Some("claude-s"));
        assert_eq!(map_model(&m, "claude-opus-4-5").as_deref(), Some("claude-x"));
        assert_eq!(map_model(&m, "gemini-2.5-pro"), None);
        assert_eq!(map_model(&BTreeMap::new(), "anything").as_deref(), Some("anything"));
    }

    #[test]
    fn priority_then_load_then_least_recently_used() {
        let now = OffsetDateTime::now_utc();
        let mut old = account(3, 50);
        old.last_used_at = Some(now - Duration::hours(1));
        let mut recent = account(4, 50);
        recent.last_used_at = Some(now);
        let (s, g) = setup(vec![account(1, 50), account(2, 10), old, recent]);
        let live: HashMap<i64, Live> = [(1, Live { in_flight: 1, ..Live::default() })].into_iter().collect();
        let got = order(candidates(&s, &g, "m", None, &HashSet::new(), &live, now));
        assert_eq!(got, vec![2, 3, 4, 1], "priority 10 first; then idle before busy; then never/oldest use");
    }

    #[test]
    fn sticky_first_but_never_when_unusable() {
        let now = OffsetDateTime::now_utc();
        let (s, g) = setup(vec![account(1, 10), account(2, 50)]);
        assert_eq!(order(candidates(&s, &g, "m", Some(2), &HashSet::new(), &HashMap::new(), now)), vec![2, 1]);
        let excluded: HashSet<i64> = [2].into_iter().collect();
        assert_eq!(order(candidates(&s, &g, "m", Some(2), &excluded, &HashMap::new(), now)), vec![1]);
    }

    #[test]
    fn cooldowns_exclude_and_report_the_earliest_reset() {
        let now = OffsetDateTime::now_utc();
        let mut limited = account(1, 10);
        limited.rate_limit_reset_at = Some(now + Duration::seconds(90));
        let mut overloaded = account(2, 10);
        overloaded.overload_until = Some(now - Duration::seconds(1));
        let (s, g) = setup(vec![limited.clone(), overloaded]);
        assert_eq!(
            order(candidates(&s, &g, "m", None, &HashSet::new(), &HashMap::new(), now)),
            vec![2],
            "a past cooldown is over"
        );
        let live: HashMap<i64, Live> =
            [(2, Live { cooldown_until: Some(now + Duration::seconds(30)), ..Live::default() })].into_iter().collect();
        let err = candidates(&s, &g, "m", None, &HashSet::new(), &live, now).err();
        assert_eq!(err, Some(Unavailable::CoolingDown { until: now + Duration::seconds(30) }));
    }

    #[test]
    fn model_support_and_health_are_told_apart() {
        let now = OffsetDateTime::now_utc();
        let mut only_sonnet = account(1, 10);
        only_sonnet.model_mapping = [("claude-sonnet-*".to_owned(), "*".to_owned())].into_iter().collect();
        let mut broken = account(2, 10);
        broken.status = AccountStatus::Error;
        let (s, g) = setup(vec![only_sonnet, broken]);
        let got = candidates(&s, &g, "claude-sonnet-4-5", None, &HashSet::new(), &HashMap::new(), now);
        assert_eq!(got, Ok(vec![Candidate { account_id: 1, upstream_model: "claude-sonnet-4-5".into() }]));
        let mut only_broken = s;
        only_broken.accounts.remove(&1);
        let g2 = GroupEntry { account_ids: vec![2], ..g };
        assert_eq!(
            candidates(&only_broken, &g2, "x", None, &HashSet::new(), &HashMap::new(), now),
            Err(Unavailable::NoAccount)
        );
        let mut mapped = account(3, 10);
        mapped.model_mapping = [("a".to_owned(), "b".to_owned())].into_iter().collect();
        let (s3, g3) = setup(vec![mapped]);
        assert_eq!(candidates(&s3, &g3, "z", None, &HashSet::new(), &HashMap::new(), now), Err(Unavailable::NoModel));
    }
}
