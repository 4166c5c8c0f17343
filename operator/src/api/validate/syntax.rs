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
