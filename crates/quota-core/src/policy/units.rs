//! Small value types of a policy file: window lengths, counts and prices.

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

/// A window length written as a number and a unit: `500ms`, `1s`, `90s`,
/// `1m`, `1h`, `1d`, `1w` (or a bare integer number of seconds).
///
/// ```
/// use quota_core::policy::WindowLength;
/// let w: WindowLength = "1m".parse().unwrap();
/// assert_eq!(w.as_millis(), 60_000);
/// assert_eq!(w.to_string(), "1m");
/// assert!("0s".parse::<WindowLength>().is_ok()); // zero is rejected by validation, with context
/// assert!("1 fortnight".parse::<WindowLength>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowLength(u64);

impl WindowLength {
    /// A window of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        WindowLength(ms)
    }

    /// A window of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        WindowLength(secs.saturating_mul(1000))
    }

    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// As a `Duration`.
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Why a window length or price could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Not `<integer><unit>`.
    #[error("invalid window length {0:?}: expected an integer and a unit (ms, s, m, h, d, w), e.g. \"1m\"")]
    Window(String),
    /// Not a decimal amount.
    #[error("invalid amount {0:?}: expected a decimal amount of dollars with at most 6 decimals, e.g. \"0.01\"")]
    Price(String),
    /// An amount below zero.
    #[error("amount {0} is negative")]
    Negative(String),
    /// An amount larger than [`Money::MAX`].
    #[error("amount {0} is too large")]
    TooLarge(String),
}

impl FromStr for WindowLength {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || UnitError::Window(s.to_owned());
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let mult = if unit.is_empty() {
            1000
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|&(_, m)| m)
                .ok_or_else(bad)?
        };
        n.checked_mul(mult).map(WindowLength).ok_or_else(bad)
    }
}

impl fmt::Display for WindowLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        for (unit, mult) in UNITS {
            if self.0 % mult == 0 {
                return write!(f, "{}{}", self.0 / mult, unit);
            }
        }
        write!(f, "{}ms", self.0)
    }
}

/// How many units a limit allows per window, or no limit at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Count {
    /// At most this many (validation rejects zero).
    Limited(u64),
    /// No limit: nothing is counted and no header is sent.
    Unlimited,
}

/// An amount of money in millionths of a dollar (micro-dollars), so prices
/// such as `$0.002` per request are exact.
///
/// ```
/// use quota_core::policy::Money;
/// let p: Money = "0.01".parse().unwrap();
/// assert_eq!(p.micros(), 10_000);
/// assert_eq!(p.to_string(), "0.01");
/// assert_eq!(Money::from_dollars(5).to_string(), "5.00");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// An amount in micro-dollars.
    pub const fn from_micros(micros: u64) -> Self {
        Money(micros)
    }

    /// The largest amount: 18446744073709.551615 dollars.
    pub const MAX: Money = Money(u64::MAX);

    /// Whole dollars, for amounts written in code; saturates at
    /// [`Money::MAX`]. Amounts from outside use
    /// [`Money::checked_from_dollars`] (or parsing, or deserializing,
    /// which never saturate).
    pub const fn from_dollars(dollars: u64) -> Self {
        Money(dollars.saturating_mul(1_000_000))
    }

    /// Whole dollars; `None` above [`Money::MAX`].
    pub const fn checked_from_dollars(dollars: u64) -> Option<Self> {
        match dollars.checked_mul(1_000_000) {
            Some(micros) => Some(Money(micros)),
            None => None,
        }
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> u64 {
        self.0
    }
}

impl FromStr for Money {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnitError::Price(s.to_owned());
        let t = s.trim().trim_start_matches('$');
        if let Some(magnitude) = t.strip_prefix('-') {
            // A well-formed amount below zero says what is wrong with it.
            return match magnitude.parse::<Money>() {
                Ok(m) if m == Money::ZERO => Ok(m),
                Ok(_) | Err(UnitError::TooLarge(_)) => Err(UnitError::Negative(s.to_owned())),
                Err(_) => Err(bad()),
            };
        }
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty() || frac.len() > 6 {
            return Err(bad());
        }
        let digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || !digits(frac) {
            return Err(bad());
        }
        let w: u64 = if whole.is_empty() {
            0
        } else {
            // Only digits: a failure is an overflow.
            whole
                .parse()
                .map_err(|_| UnitError::TooLarge(s.to_owned()))?
        };
        let f: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().map_err(|_| bad())?
        };
        w.checked_mul(1_000_000)
            .and_then(|w| w.checked_add(f))
            .map(Money)
            .ok_or_else(|| UnitError::TooLarge(s.to_owned()))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let frac = self.0 % 1_000_000;
        let mut frac_s = format!("{frac:06}");
        while frac_s.len() > 2 && frac_s.ends_with('0') {
            frac_s.pop();
        }
        write!(f, "{whole}.{frac_s}")
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use super::{Count, Money, UnitError, WindowLength};
    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt;

    impl Serialize for WindowLength {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for WindowLength {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = WindowLength;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a window length such as \"1m\", \"60s\" or \"1d\", or an integer number of seconds")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<WindowLength, E> {
                    v.parse().map_err(E::custom)
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<WindowLength, E> {
                    v.checked_mul(1000)
                        .map(WindowLength::from_millis)
                        .ok_or_else(|| E::custom("window length too large"))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<WindowLength, E> {
                    let v = u64::try_from(v)
                        .map_err(|_| E::custom("window length cannot be negative"))?;
                    self.visit_u64(v)
                }
            }
            d.deserialize_any(V)
        }
    }

    impl Serialize for Count {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Count::Limited(n) => s.serialize_u64(*n),
                Count::Unlimited => s.serialize_str("unlimited"),
            }
        }
    }

    impl<'de> Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Count;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a non-negative integer or \"unlimited\"")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                    if v.eq_ignore_ascii_case("unlimited") {
                        Ok(Count::Unlimited)
                    } else {
                        Err(E::custom(format!(
                            "invalid count {v:?}: expected an integer or \"unlimited\""
                        )))
                    }
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                    Ok(Count::Limited(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                    u64::try_from(v)
                        .map(Count::Limited)
                        .map_err(|_| E::custom("count cannot be negative"))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl Serialize for Money {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for Money {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Money;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an amount of dollars, as a string such as \"10.00\" or a number")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                    v.parse().map_err(E::custom)
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                    Money::checked_from_dollars(v)
                        .ok_or_else(|| E::custom(UnitError::TooLarge(v.to_string())))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                    match u64::try_from(v) {
                        Ok(v) => self.visit_u64(v),
                        Err(_) => Err(E::custom(UnitError::Negative(v.to_string()))),
                    }
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                    // Exact or refused: the shortest decimal that reads back
                    // as `v` must have at most 6 decimals.
                    format!("{v}").parse().map_err(E::custom)
                }
            }
            d.deserialize_any(V)
        }
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn from_json(text: &str) -> Result<Money, String> {
        serde_json::from_str::<Money>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn amounts_read_exactly_as_strings_or_numbers() {
        assert_eq!(from_json("\"10.00\""), Ok(Money::from_dollars(10)));
        assert_eq!(from_json("10"), Ok(Money::from_dollars(10)));
        assert_eq!(from_json("0.25"), Ok(Money::from_micros(250_000)));
        assert_eq!(from_json("\"0.000001\""), Ok(Money::from_micros(1)));
        assert_eq!(from_json("\"18446744073709.551615\""), Ok(Money::MAX));
        assert_eq!("-0".parse::<Money>(), Ok(Money::ZERO));
    }

    #[test]
    fn amounts_out_of_range_are_refused_never_saturated() {
        for text in [
            "18446744073710",
            "1e30",
            "\"18446744073709.551616\"",
            "\"99999999999999999999\"",
        ] {
            let err = from_json(text).unwrap_err();
            assert!(err.contains("too large"), "{text}: {err}");
        }
        assert_eq!(Money::checked_from_dollars(18_446_744_073_710), None);
        assert_eq!(
            Money::checked_from_dollars(18_446_744_073_709),
            Some(Money::from_micros(18_446_744_073_709_000_000))
        );
    }

    #[test]
    fn negative_and_malformed_amounts_say_so() {
        for text in ["-5", "-0.5", "\"-5\"", "\"-100.25\""] {
            let err = from_json(text).unwrap_err();
            assert!(err.contains("negative"), "{text}: {err}");
        }
        for text in [
            "\"abc\"",
            "0.0000001",
            "\"1.2.3\"",
            "\"--5\"",
            "[1]",
            "true",
        ] {
            let err = from_json(text).unwrap_err();
            assert!(
                !err.contains("negative") && !err.contains("too large"),
                "{text}: {err}"
            );
        }
    }
}
