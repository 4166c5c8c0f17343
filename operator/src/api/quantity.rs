//! Just enough of Kubernetes' resource quantities to compare sizes without an API server.

use std::cmp::Ordering;

/// A parsed quantity, kept as an exact rational `mantissa * 10^exp10 * 2^exp2` would be overkill:
/// sizes and CPU values here fit comfortably in f64 for comparison and positivity checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantity(f64);

/// A string that is not a Kubernetes quantity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a quantity (expected a number with an optional suffix such as 500m, 20Gi or 1G)"
)]
pub struct QuantityError(pub String);

const SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

impl Quantity {
    /// Parses "20Gi", "500m", "1.5", "1e3".
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError(text.to_owned());
        let (number, multiplier) = SUFFIXES
            .iter()
            .find_map(|(suffix, mult)| text.strip_suffix(suffix).map(|n| (n, *mult)))
            .unwrap_or((text, 1.0));
        let plain = |s: &str| {
            let s = s.strip_prefix(['+', '-']).unwrap_or(s);
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_digit() || c == '.')
                && s.chars().filter(|c| *c == '.').count() <= 1
                && s != "."
        };
        let value = match number.split_once(['e', 'E']) {
            Some((m, e)) if multiplier == 1.0 && plain(m) && e.parse::<i32>().is_ok() => {
                number.parse::<f64>().ok()
            }
            None if plain(number) => number.parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(err)?;
        Ok(Self(value * multiplier))
    }

    /// Whether the quantity is greater than zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0.0
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.0.partial_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_milli_suffixes() {
        assert_eq!(Quantity::parse("1Ki").unwrap(), Quantity(1024.0));
        assert_eq!(Quantity::parse("500m").unwrap(), Quantity(0.5));
        assert_eq!(Quantity::parse("2G").unwrap(), Quantity(2e9));
        assert_eq!(Quantity::parse("1e3").unwrap(), Quantity(1000.0));
        assert!(Quantity::parse("20Gi").unwrap() > Quantity::parse("20G").unwrap());
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "Gi", "20GB", "twenty", "1..2", "1e3Gi", "."] {
            assert!(Quantity::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
