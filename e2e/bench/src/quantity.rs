//! Kubernetes quantities ("250m", "1Gi", "2Ti", "1000") as plain numbers.

use anyhow::{Context, Result};

/// The value of a quantity in base units (cores, bytes, count).
pub fn parse(text: &str) -> Result<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("quantity {text:?}"))?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        other => anyhow::bail!("quantity {text:?}: unknown suffix {other:?}"),
    };
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses() {
        assert_eq!(super::parse("250m").unwrap(), 0.25);
        assert_eq!(super::parse("2").unwrap(), 2.0);
        assert_eq!(super::parse("1Gi").unwrap(), 1024.0 * 1024.0 * 1024.0);
        assert!(super::parse("1Xi").is_err());
    }
}
