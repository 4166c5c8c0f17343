//! Ownership registry in TXT records, the ExternalDNS way.
//!
//! Every record the operator writes has a companion TXT record at
//! `<prefix><type>-<name>` (e.g. `insync-a-fcloud.drtst.org` for the `A` record of
//! `fcloud.drtst.org`) whose value is
//! `"heritage=insync-operator,insync-operator/owner=<owner-id>,insync-operator/resource=insynccloud/<ns>/<name>"`.
//! The type in the name keeps a `CNAME` and its TXT on different names (a `CNAME` may not share
//! its name with any other record) and lets an `A` and a `CNAME` generation of the same host
//! be told apart. A record is ours only when that TXT exists and names our owner id.

use std::fmt;

/// The `heritage` every ownership TXT record carries.
pub(crate) const HERITAGE: &str = "insync-operator";
/// Default TXT name prefix.
pub(crate) const DEFAULT_TXT_PREFIX: &str = "insync-";
const OWNER_KEY: &str = "insync-operator/owner";
const RESOURCE_KEY: &str = "insync-operator/resource";
/// Route53 TXT character-strings hold at most 255 characters each.
const TXT_CHUNK: usize = 255;

/// Who owns a record, as written in its TXT companion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ownership {
    /// The operator instance's `--dns-owner-id`.
    pub owner_id: String,
    /// The owning resource, `insynccloud/<ns>/<name>`.
    pub resource: String,
}

impl Ownership {
    /// The TXT value: one or more quoted character-strings.
    pub fn to_txt_value(&self) -> String {
        let raw = format!(
            "heritage={HERITAGE},{OWNER_KEY}={},{RESOURCE_KEY}={}",
            self.owner_id, self.resource
        );
        let chars: Vec<char> = raw.chars().collect();
        chars
            .chunks(TXT_CHUNK)
            .map(|c| format!("\"{}\"", c.iter().collect::<String>()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads an ownership value; `None` when it is not an `insync-operator` heritage record.
    /// Unknown extra labels are ignored, so later versions can add some.
    pub(crate) fn parse_txt(value: &str) -> Option<Ownership> {
        let joined = unquote(value);
        let mut heritage = false;
        let mut owner = None;
        let mut resource = None;
        for part in joined.split(',') {
            let (k, v) = part.split_once('=')?;
            match k.trim() {
                "heritage" => heritage = v.trim() == HERITAGE,
                OWNER_KEY => owner = Some(v.trim().to_owned()),
                RESOURCE_KEY => resource = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        if !heritage {
            return None;
        }
        Some(Ownership {
            owner_id: owner?,
            resource: resource.unwrap_or_default(),
        })
    }
}

impl fmt::Display for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "owner {:?}, {}", self.owner_id, self.resource)
    }
}

/// Concatenates the quoted character-strings of a TXT value (`"a" "b"` → `ab`); a value
/// without quotes is taken as it is.
fn unquote(value: &str) -> String {
    let v = value.trim();
    if !v.starts_with('"') {
        return v.to_owned();
    }
    let mut out = String::new();
    let mut inside = false;
    let mut escaped = false;
    for c in v.chars() {
        if inside {
            if escaped {
                out.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                inside = false;
            } else {
                out.push(c);
            }
        } else if c == '"' {
            inside = true;
        }
    }
    out
}

/// Why a registry could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The owner id would break the TXT value's `key=value,...` format or is empty.
    #[error(
        "invalid DNS owner id {0:?}: use 1-63 characters from letters, digits, '-', '_', '.' (set --dns-owner-id)"
    )]
    InvalidOwnerId(String),
    /// The TXT prefix cannot start a DNS label.
    #[error(
        "invalid DNS TXT prefix {0:?}: use up to 32 letters, digits, '-' or '_' (set --dns-txt-prefix)"
    )]
    InvalidPrefix(String),
}

/// Names and values of ownership TXT records for one operator instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRegistry {
    owner_id: String,
    prefix: String,
}

/// Record types whose names the registry can encode (lower case in TXT names).
const KNOWN_TYPES: &[&str] = &["a", "aaaa", "cname", "mx", "ns", "srv", "txt", "caa", "ptr"];

impl TxtRegistry {
    /// A registry for `owner_id` with TXT names `<prefix><type>-<name>`.
    pub fn new(owner_id: &str, prefix: &str) -> Result<Self, RegistryError> {
        let ok_owner = !owner_id.is_empty()
            && owner_id.len() <= 63
            && owner_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok_owner {
            return Err(RegistryError::InvalidOwnerId(owner_id.to_owned()));
        }
        let ok_prefix = prefix.len() <= 32
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !ok_prefix {
            return Err(RegistryError::InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            owner_id: owner_id.to_owned(),
            prefix: prefix.to_ascii_lowercase(),
        })
    }

    /// This operator's owner id.
    pub(crate) fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// Name of the TXT record that owns the `route53_type` record at `name`.
    pub(crate) fn txt_name(&self, route53_type: &str, name: &str) -> String {
        format!(
            "{}{}-{}",
            self.prefix,
            route53_type.to_ascii_lowercase(),
            name
        )
    }

    /// The inverse of [`TxtRegistry::txt_name`]: `(TYPE, name)` of the record a TXT name owns.
    pub(crate) fn parse_txt_name(&self, txt_name: &str) -> Option<(String, String)> {
        let rest = txt_name.strip_prefix(&self.prefix)?;
        let (ty, name) = rest.split_once('-')?;
        if !KNOWN_TYPES.contains(&ty) || name.is_empty() {
            return None;
        }
        Some((ty.to_ascii_uppercase(), name.to_owned()))
    }

    /// The ownership this operator writes for `resource`.
    pub(crate) fn ownership(&self, resource: &str) -> Ownership {
        Ownership {
            owner_id: self.owner_id.clone(),
            resource: resource.to_owned(),
        }
    }

    /// Whether a TXT value says "owned by this operator instance" (any resource).
    pub(crate) fn owned_by_us(&self, txt_values: &[String]) -> Option<Ownership> {
        txt_values
            .iter()
            .filter_map(|v| Ownership::parse_txt(v))
            .find(|o| o.owner_id == self.owner_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips() {
        let o = Ownership {
            owner_id: "prod-1".into(),
            resource: "insynccloud/ns/fcloud".into(),
        };
        let v = o.to_txt_value();
        assert_eq!(
            v,
            "\"heritage=insync-operator,insync-operator/owner=prod-1,insync-operator/resource=insynccloud/ns/fcloud\""
        );
        assert_eq!(Ownership::parse_txt(&v), Some(o));
    }

    #[test]
    fn long_values_are_split_into_character_strings() {
        let o = Ownership {
            owner_id: "o".into(),
            resource: format!("insynccloud/{}/{}", "n".repeat(150), "c".repeat(150)),
        };
        let v = o.to_txt_value();
        assert!(v.contains("\" \""));
        assert_eq!(Ownership::parse_txt(&v), Some(o));
    }

    #[test]
    fn foreign_values_are_not_ours() {
        assert_eq!(Ownership::parse_txt("\"v=spf1 -all\""), None);
        assert_eq!(
            Ownership::parse_txt("\"heritage=external-dns,external-dns/owner=default\""),
            None
        );
        let r = TxtRegistry::new("me", "insync-").unwrap();
        let theirs = Ownership {
            owner_id: "other".into(),
            resource: "insynccloud/a/b".into(),
        }
        .to_txt_value();
        assert_eq!(r.owned_by_us(&[theirs]), None);
        let ours = r.ownership("insynccloud/a/b").to_txt_value();
        assert!(r.owned_by_us(&[ours]).is_some());
    }

    #[test]
    fn names_encode_type() {
        let r = TxtRegistry::new("me", "insync-").unwrap();
        assert_eq!(r.txt_name("CNAME", "f.d.org"), "insync-cname-f.d.org");
        assert_eq!(
            r.parse_txt_name("insync-cname-f.d.org"),
            Some(("CNAME".into(), "f.d.org".into()))
        );
        assert_eq!(r.parse_txt_name("other-a-f.d.org"), None);
        assert_eq!(r.parse_txt_name("insync-zz-f.d.org"), None);
        let bare = TxtRegistry::new("me", "").unwrap();
        assert_eq!(
            bare.parse_txt_name("a-x-y.d.org"),
            Some(("A".into(), "x-y.d.org".into()))
        );
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(TxtRegistry::new("", "p-").is_err());
        assert!(TxtRegistry::new("a,b", "p-").is_err());
        assert!(TxtRegistry::new("ok", "bad.prefix").is_err());
    }
}
