//! Which domains the operator may write records into, per namespace (`--dns-allowed-domain`).
//!
//! The operator's AWS role can usually write every zone of the account; without a limit any
//! namespace's cloud could publish `<name>.<domain>` into any of them. Each flag value is either
//! `DOMAIN` (every namespace may use it) or `NAMESPACE=DOMAIN` (only that namespace). A cloud's
//! `spec.dns.domain` is allowed when it equals an allowed domain or ends in `.<allowed>`
//! (whole labels only: `drtst.org` allows `team.drtst.org`, not `evildrtst.org`). Everything
//! the operator writes for a cloud (its record and the ownership TXT) lies under that domain.
//!
//! Deny by default: with no `--dns-allowed-domain` at all no cloud may publish anything, and
//! the refusal tells the platform team what to set. Allowing every domain must be asked for
//! with `--dns-allow-all-domains` ([`AllowList::everything`]), which cannot be combined with a
//! list.

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

/// The allow-list. [`AllowList::default`] allows nothing; [`AllowList::everything`] allows
/// every domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Every domain is allowed (`--dns-allow-all-domains`); the lists are then empty.
    all: bool,
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
    /// The operator has no allow-list at all (deny by default), for any namespace.
    pub(crate) unconfigured: bool,
}

impl NotAllowed {
    /// The `DNSReady` reason: `NoAllowedDomains` when the operator allows no domain at all,
    /// `DomainNotAllowed` when the domain is outside the namespace's list.
    pub(crate) fn reason(&self) -> &'static str {
        if self.unconfigured {
            "NoAllowedDomains"
        } else {
            "DomainNotAllowed"
        }
    }
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unconfigured {
            return write!(
                f,
                "this operator publishes no DNS records (deny by default): it has no list of allowed domains, so nothing is written under {}. The platform team must allow domains with --dns-allowed-domain (Helm values dns.allowedDomains, dns.allowedDomainsByNamespace), or allow every domain explicitly with --dns-allow-all-domains (Helm value dns.allowAllDomains: true)",
                self.domain
            );
        }
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
    /// The list that allows every domain to every namespace (`--dns-allow-all-domains`).
    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// The list from the flags: `values` of `--dns-allowed-domain`, and whether
    /// `--dns-allow-all-domains` was given (refused together with values: which one was meant
    /// is not clear). No values and no allow-all allows nothing.
    pub(crate) fn from_flags<S: AsRef<str>>(
        values: &[S],
        allow_all: bool,
    ) -> Result<Self, AllowListError> {
        match (values.first(), allow_all) {
            (Some(first), true) => Err(AllowListError {
                value: first.as_ref().to_owned(),
                problem: "given together with --dns-allow-all-domains; use one or the other",
            }),
            (None, true) => Ok(Self::everything()),
            (_, false) => Self::parse(values),
        }
    }

    /// Parses the flag values; an empty list allows nothing.
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

    /// Whether the list allows every domain (`--dns-allow-all-domains`).
    pub(crate) fn allows_all(&self) -> bool {
        self.all
    }

    /// Whether the list allows no domain to any namespace (deny by default).
    pub(crate) fn allows_nothing(&self) -> bool {
        !self.all && self.everywhere.is_empty() && self.per_namespace.is_empty()
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
                unconfigured: self.allows_nothing(),
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
    fn no_flag_denies_everything_and_says_what_to_set() {
        for l in [list(&[]), AllowList::default()] {
            assert!(!l.allows_all());
            assert!(l.allows_nothing());
            let refused = l.check("any", "anything.example").unwrap_err();
            assert_eq!(refused.reason(), "NoAllowedDomains");
            let message = refused.to_string();
            for hint in [
                "deny by default",
                "anything.example",
                "--dns-allowed-domain",
                "dns.allowedDomains",
                "--dns-allow-all-domains",
                "dns.allowAllDomains",
            ] {
                assert!(message.contains(hint), "{hint:?} missing: {message}");
            }
        }
    }

    #[test]
    fn allow_all_must_be_asked_for_and_allows_every_domain() {
        let l = AllowList::from_flags::<&str>(&[], true).expect("valid");
        assert_eq!(l, AllowList::everything());
        assert!(l.allows_all());
        assert!(!l.allows_nothing());
        assert!(l.check("any", "anything.example").is_ok());
        assert!(l.check("other", "drtst.org").is_ok());
        let none = AllowList::from_flags::<&str>(&[], false).expect("valid");
        assert!(none.check("any", "anything.example").is_err());
    }

    #[test]
    fn allow_all_and_a_list_together_are_refused() {
        let refused = AllowList::from_flags(&["drtst.org"], true).unwrap_err();
        assert!(
            refused.to_string().contains("--dns-allow-all-domains"),
            "{refused}"
        );
        assert!(AllowList::parse(&["*"]).is_err(), "\"*\" is not allow-all");
    }

    #[test]
    fn a_list_allows_only_its_domains() {
        let l = AllowList::from_flags(&["drtst.org"], false).expect("valid");
        assert!(!l.allows_all() && !l.allows_nothing());
        assert!(l.check("a", "team.drtst.org").is_ok());
        let refused = l.check("a", "example.com").unwrap_err();
        assert_eq!(refused.reason(), "DomainNotAllowed");
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
        assert!(!l.allows_all() && !l.allows_nothing());
        let refused = l.check("team-b", "drtst.org").unwrap_err();
        assert!(refused.allowed.is_empty());
        assert_eq!(refused.reason(), "DomainNotAllowed");
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
