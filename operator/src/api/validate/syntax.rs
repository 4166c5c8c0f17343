//! The syntax of the names, tags and durations a spec holds.

use std::time::Duration;

/// Parses durations written as `1h30m`, `10m`, `90s`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' => {
                let count: u64 = digits.parse().ok()?;
                digits.clear();
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = total.checked_add(count.checked_mul(unit)?)?;
            }
            _ => return None,
        }
    }
    digits.is_empty().then(|| Duration::from_secs(total))
}

/// A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|prefix| {
        !prefix.is_empty() && prefix.len() <= 253 && prefix.split('.').all(is_dns_label_lenient)
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' and '.', alphanumeric at both ends.
pub(crate) fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// RFC 1035 label: starts with a letter.
pub(crate) fn is_dns_label(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_lowercase()) && is_dns_label_lenient(value)
}

/// RFC 1123 label: may start with a digit.
pub(crate) fn is_dns_label_lenient(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// A DNS name of two labels or more, whose top-level label starts with a letter.
pub(crate) fn is_dns_name(value: &str) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| is_dns_label_lenient(label))
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_lowercase()))
}

pub(crate) fn is_image_tag(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['.', '-'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An AWS region such as `us-east-1`: a two-letter area, lower-case words, then a number.
pub(crate) fn is_aws_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|part| !part.is_empty())
        && words
            .iter()
            .all(|word| word.chars().all(|c| c.is_ascii_lowercase()))
        && number.chars().all(|c| c.is_ascii_digit())
}

/// An S3 bucket name: 3-63 lower-case letters, digits, '.' and '-', alphanumeric at both ends.
pub(crate) fn is_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A Route53 hosted zone id such as `Z0123456789ABCDEFGHIJ`, with or without `/hostedzone/`.
pub(crate) fn is_hosted_zone_id(zone: &str) -> bool {
    let id = zone.strip_prefix("/hostedzone/").unwrap_or(zone);
    !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A value that can be written as one `key = value` line of a config file, or one argument:
/// no newline, carriage return or other control character, which could end the line and start
/// another (a new `[section]`).
pub(crate) fn is_single_line(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

/// A host a client connects to: a DNS name or IPv4 address (letters, digits, '-' and '.',
/// alphanumeric at both ends), or an IPv6 address (hex digits, ':' and '.'), at most 253
/// characters. Nothing that could carry a port, a path or a second line.
pub(crate) fn is_host(value: &str) -> bool {
    let dns_or_ipv4 = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    let ipv6 = value.contains(':')
        && value
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
    value.len() <= 253 && (dns_or_ipv4 || ipv6)
}

/// A MySQL database name the operator can pass unquoted to a client and into SQL: 1-64
/// letters, digits and '_' (so never an option, never a quote).
pub(crate) fn is_mysql_identifier(value: &str) -> bool {
    (1..=64).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A metadata-store table prefix: at most 64 letters, digits, '_', '.' and '-' (what DynamoDB
/// table names allow), not starting with '-' (it would read as an option). Empty is allowed.
pub(crate) fn is_table_prefix(value: &str) -> bool {
    value.len() <= 64
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An http(s) endpoint URL: the scheme, a host (DNS name, IPv4 or a bracketed IPv6), an
/// optional port, then an optional path of printable ASCII without spaces; at most 2048
/// characters. No user info, whitespace or control characters.
pub(crate) fn is_endpoint_url(value: &str) -> bool {
    let Some(rest) = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ipv6, after) = bracketed.split_once(']').unwrap_or((bracketed, "?"));
            let ok = !ipv6.is_empty()
                && ipv6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
            match after {
                "" => (ok, None),
                _ => (ok, Some(after.strip_prefix(':').unwrap_or("?"))),
            }
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
            (ok, port)
        }
    };
    value.len() <= 2048
        && host_ok
        && port.is_none_or(is_port)
        && path.chars().all(|c| c.is_ascii_graphic())
}

/// 1-5 digits, as a port in a URL or image reference.
fn is_port(value: &str) -> bool {
    (1..=5).contains(&value.len()) && value.chars().all(|c| c.is_ascii_digit())
}

/// An image registry and path prefix such as `registry.example.com:5000/insync`: a host (with
/// an optional port), then path components of lower-case letters and digits joined by '.',
/// '_' or '-'; at most 255 characters, no trailing '/', tag or digest.
pub(crate) fn is_image_repository(value: &str) -> bool {
    let mut parts = value.split('/');
    let host = parts.next().unwrap_or_default();
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let host_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    let port_ok = port.is_none_or(is_port);
    let path_ok = parts.all(|part| {
        part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    });
    value.len() <= 255 && host_ok && port_ok && path_ok
}

/// An S3 key prefix: no control characters (a newline would split an argument or a log line)
/// and not starting with '/'.
pub(crate) fn is_key_prefix(value: &str) -> bool {
    is_single_line(value) && !value.starts_with('/')
}
