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
    pub(crate) fn parse(text: &str) -> Result<Self, QuantityError> {
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
    pub(crate) fn is_positive(self) -> bool {
        self.0 > 0.0
    }
}

impl Quantity {
    /// Whether two quantity strings denote the same amount (`5120Mi` and `5Gi`, `1000m` and `1`),
    /// the way the API server sees them: it stores quantities in canonical form, so a live object
    /// rarely spells a quantity the way it was written. Exact (rational arithmetic) where the
    /// values fit in 128 bits, else compared as f64. Two strings that are not both quantities are
    /// equal only when identical.
    pub(crate) fn same(a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        let exact = Exact::parse(a).zip(Exact::parse(b)).and_then(|(x, y)| {
            let (l, r) = (x.num.checked_mul(y.den)?, y.num.checked_mul(x.den)?);
            Some((l == 0 && r == 0) || (x.negative == y.negative && l == r))
        });
        exact.unwrap_or_else(|| match (Quantity::parse(a), Quantity::parse(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        })
    }
}

/// A quantity as the exact fraction `num / den`.
struct Exact {
    negative: bool,
    num: u128,
    den: u128,
}

impl Exact {
    fn parse(text: &str) -> Option<Self> {
        // Validates the syntax once, with the same rules as `Quantity::parse`.
        Quantity::parse(text).ok()?;
        let (number, (base, power)) = SUFFIX_POWERS
            .iter()
            .find_map(|(suffix, p)| text.strip_suffix(suffix).map(|n| (n, *p)))
            .unwrap_or((text, (10, 0)));
        let (mantissa, exponent) = match number.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i32>().ok()?),
            None => (number, 0),
        };
        let negative = mantissa.starts_with('-');
        let mantissa = mantissa.trim_start_matches(['+', '-']);
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{whole}{fraction}");
        let mut num: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut den: u128 = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        let scale =
            |value: u128, base: u128, power: u32| value.checked_mul(base.checked_pow(power)?);
        let ten = exponent.checked_add(if base == 10 { power } else { 0 })?;
        if ten >= 0 {
            num = scale(num, 10, ten.unsigned_abs())?;
        } else {
            den = scale(den, 10, ten.unsigned_abs())?;
        }
        if base == 2 {
            num = scale(num, 2, power.unsigned_abs())?;
        }
        Some(Self { negative, num, den })
    }
}

/// Each suffix as `(base, power)`: binary suffixes are powers of 2, decimal ones of 10.
const SUFFIX_POWERS: &[(&str, (u128, i32))] = &[
    ("Ki", (2, 10)),
    ("Mi", (2, 20)),
    ("Gi", (2, 30)),
    ("Ti", (2, 40)),
    ("Pi", (2, 50)),
    ("Ei", (2, 60)),
    ("n", (10, -9)),
    ("u", (10, -6)),
    ("m", (10, -3)),
    ("k", (10, 3)),
    ("M", (10, 6)),
    ("G", (10, 9)),
    ("T", (10, 12)),
    ("P", (10, 15)),
    ("E", (10, 18)),
];

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
    fn equal_amounts_written_differently_are_the_same_quantity() {
        for (a, b) in [
            ("5120Mi", "5Gi"),
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5Gi", "1536Mi"),
            ("1e3", "1k"),
            ("100m", "0.1"),
            ("2G", "2000M"),
            ("1Ki", "1024"),
            ("0", "0Gi"),
        ] {
            assert!(Quantity::same(a, b), "{a} == {b}");
            assert!(Quantity::same(b, a), "{b} == {a}");
        }
        for (a, b) in [
            ("5Gi", "5G"),
            ("1", "1001m"),
            ("1", "-1"),
            ("1Gi", "not a quantity"),
            ("x", "y"),
        ] {
            assert!(!Quantity::same(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "Gi", "20GB", "twenty", "1..2", "1e3Gi", "."] {
            assert!(Quantity::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
