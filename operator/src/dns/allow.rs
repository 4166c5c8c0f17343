//! Which domains the operator may write records into, per namespace (`--dns-allowed-domain`).
//!
//! The operator's AWS role can usually write every zone of the account; without a limit any
//! namespace's cloud could publish `<name>.<domain>` into any of them. Each flag value is either
//! `DOMAIN` (every namespace may use it) or `NAMESPACE=DOMAIN` (only that namespace). A cloud's
//! `spec.dns.domain` is allowed when it equals an allowed domain or ends in `.<allowed>`
//! (whole labels only: `drtst.org` allows `team.drtst.org`, not `evildrtst.org`). Everything
//! the operator writes for a cloud (its record and the ownership TXT) lies under that domain.
//! No flag at all allows every domain (the behaviour before the flag existed).

use std::collections::BTreeMap;
use std::fmt;

use crate::dns::record::normalize_name;

/// A flag value that is not `DOMAIN` or `NAMESPACE=DOMAIN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--dns-allowed-domain {value:?}: {problem}")]
pub struct AllowListError {
    /// The flag value as given.
    pub(crate) value: String,
    /// What is wrong with it.
    pub(crate) problem: &'static str,
}

/// The allow-list. [`AllowList::default`] allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Domains every namespace may use.
    everywhere: Vec<String>,
    /// Domains only one namespace may use.
    per_namespace: BTreeMap<String, Vec<String>>,
}

/// Why a domain was refused: the domains the namespace may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotAllowed {
    /// The refused domain.
    pub(crate) domain: String,
    /// The namespace asking.
    pub(crate) namespace: String,
    /// Every domain the namespace may use, sorted.
    pub(crate) allowed: Vec<String>,
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this operator may not write DNS records under {} for namespace {}; allowed domains: {} (the operator's --dns-allowed-domain flags, Helm value dns.allowedDomains)",
            self.domain,
            self.namespace,
            if self.allowed.is_empty() {
                "none".to_owned()
            } else {
                self.allowed.join(", ")
            }
        )
    }
}

fn domain(value: &str, raw: &str) -> Result<String, AllowListError> {
    let d = normalize_name(value.trim().trim_start_matches("*."));
    let bad = |problem| AllowListError {
        value: raw.to_owned(),
        problem,
    };
    if d.is_empty() {
        return Err(bad("empty domain"));
    }
    if d.split('.').any(|l| {
        l.is_empty() || l.len() > 63 || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }) {
        return Err(bad("not a DNS name"));
    }
    Ok(d)
}

impl AllowList {
    /// Parses the flag values; an empty list allows everything.
    pub(crate) fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, AllowListError> {
        let mut list = AllowList::default();
        for raw in values {
            let raw = raw.as_ref();
            match raw.split_once('=') {
                Some((ns, d)) => {
                    let ns = ns.trim();
                    if ns.is_empty() {
                        return Err(AllowListError {
                            value: raw.to_owned(),
                            problem: "empty namespace before '='",
                        });
                    }
                    let d = domain(d, raw)?;
                    list.per_namespace.entry(ns.to_owned()).or_default().push(d);
                }
                None => list.everywhere.push(domain(raw, raw)?),
            }
        }
        Ok(list)
    }

    /// Whether the list allows everything (no flag given).
    pub(crate) fn allows_all(&self) -> bool {
        self.everywhere.is_empty() && self.per_namespace.is_empty()
    }

    /// The domains a namespace may use, sorted and deduplicated.
    pub(crate) fn allowed_for(&self, namespace: &str) -> Vec<String> {
        let mut all: Vec<String> = self
            .everywhere
            .iter()
            .chain(self.per_namespace.get(namespace).into_iter().flatten())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Checks a cloud's `spec.dns.domain` for its namespace.
    pub(crate) fn check(&self, namespace: &str, domain: &str) -> Result<(), NotAllowed> {
        if self.allows_all() {
            return Ok(());
        }
        let d = normalize_name(domain);
        let allowed = self.allowed_for(namespace);
        let covered = |a: &String| d == *a || d.ends_with(&format!(".{a}"));
        if allowed.iter().any(covered) {
            Ok(())
        } else {
            Err(NotAllowed {
                domain: d,
                namespace: namespace.to_owned(),
                allowed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> AllowList {
        AllowList::parse(values).expect("valid")
    }

    #[test]
    fn no_flag_allows_everything() {
        let l = list(&[]);
        assert!(l.allows_all());
        assert!(l.check("any", "anything.example").is_ok());
    }

    #[test]
    fn suffix_match_on_whole_labels() {
        let l = list(&["drtst.org"]);
        assert!(l.check("a", "drtst.org").is_ok());
        assert!(l.check("a", "team.drtst.org").is_ok());
        assert!(
            l.check("a", "Team.DRTST.org.").is_ok(),
            "case and the root dot"
        );
        assert!(l.check("a", "evildrtst.org").is_err());
        assert!(l.check("a", "drtst.org.evil.com").is_err());
        assert!(l.check("a", "org").is_err());
    }

    #[test]
    fn per_namespace_domains_add_to_the_shared_ones() {
        let l = list(&[
            "drtst.org",
            "team-a=team-a.example.com",
            "team-a=more.example",
        ]);
        assert!(l.check("team-a", "x.team-a.example.com").is_ok());
        assert!(l.check("team-a", "more.example").is_ok());
        assert!(l.check("team-a", "drtst.org").is_ok());
        let refused = l.check("team-b", "team-a.example.com").unwrap_err();
        assert_eq!(refused.allowed, ["drtst.org"]);
        assert_eq!(
            l.allowed_for("team-a"),
            ["drtst.org", "more.example", "team-a.example.com"]
        );
    }

    #[test]
    fn only_per_namespace_entries_refuse_other_namespaces_entirely() {
        let l = list(&["team-a=team-a.example.com"]);
        assert!(!l.allows_all());
        let refused = l.check("team-b", "drtst.org").unwrap_err();
        assert!(refused.allowed.is_empty());
        let message = refused.to_string();
        assert!(message.contains("allowed domains: none"), "{message}");
        assert!(message.contains("team-b"), "{message}");
    }

    #[test]
    fn the_refusal_names_the_allowed_domains() {
        let l = list(&["b.example", "a.example"]);
        let message = l.check("ns", "c.example").unwrap_err().to_string();
        assert!(
            message.contains(
                "under c.example for namespace ns; allowed domains: a.example, b.example"
            ),
            "{message}"
        );
    }

    #[test]
    fn bad_values_are_refused_at_start() {
        for bad in [
            "",
            "=drtst.org",
            "ns=",
            "not a domain",
            "a..b",
            "ns=x_y.org",
        ] {
            assert!(AllowList::parse(&[bad]).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            list(&["*.drtst.org"]),
            list(&["drtst.org"]),
            "a wildcard means the suffix"
        );
    }
}
