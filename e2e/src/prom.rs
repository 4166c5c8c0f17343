//! Just enough of the Prometheus text format to read counters (the operator's /metrics and the
//! API server's).

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the samples of a text exposition (comments and malformed lines are skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find(['{', ' ']) {
        Some(i) if line.as_bytes()[i] == b'{' => {
            let end = closing_brace(line, i)?;
            (
                &line[..i],
                parse_labels(&line[i + 1..end])?,
                &line[end + 1..],
            )
        }
        Some(i) => (&line[..i], BTreeMap::new(), &line[i..]),
        None => return None,
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(open + i),
            _ => {}
        }
    }
    None
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        let after = rest[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        rest = after[end? + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim();
    }
    Some(labels)
}

/// Sum of the samples of `name` (over all label sets).
pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_values() {
        let text = "# HELP x\napiserver_request_total{code=\"201\",verb=\"POST\",resource=\"pods\",subresource=\"\"} 12\nplain_total 3\nbad{\n";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["verb"], "POST");
        assert_eq!(s[0].labels["subresource"], "");
        assert_eq!(s[0].value, 12.0);
        assert_eq!(sum(&s, "plain_total"), 3.0);
    }

    #[test]
    fn quoted_braces_and_commas() {
        let s = parse("m{a=\"x,}y\",b=\"q\\\"\"} 1.5e3");
        assert_eq!(s[0].labels["a"], "x,}y");
        assert_eq!(s[0].labels["b"], "q\"");
        assert_eq!(s[0].value, 1500.0);
    }
}
