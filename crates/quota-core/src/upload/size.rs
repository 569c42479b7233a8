//! Byte sizes as written in configuration: `"10MiB"`, `"20 MB"`, `1048576`.

use core::fmt;
use core::str::FromStr;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// A number of bytes.
///
/// **Every unit is a power of 1024.** `MB` and `MiB` both mean 1,048,576 bytes,
/// `KB` and `KiB` 1,024 bytes, and so on: the source document's "10 MB" is
/// read as 10 MiB = 10,485,760 bytes, the larger (more permissive) of its two
/// possible readings, so a file that its author measured as "10 MB" in either
/// convention is admitted. To give an exact decimal size, write plain bytes.
///
/// Parsing accepts a whole number, optional spaces, and an optional unit,
/// case-insensitive: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`,
/// `T`/`TB`/`TiB`. Display writes the largest unit that divides the size
/// exactly, so it parses back to the same value. With serde it is written as
/// that string and read from a string or a non-negative integer (bytes).
///
/// ```
/// use quota_core::upload::ByteSize;
/// let size: ByteSize = "10MB".parse()?;
/// assert_eq!(size, ByteSize::mib(10));
/// assert_eq!(size.bytes(), 10 * 1024 * 1024);
/// assert_eq!(size.to_string(), "10 MiB");
/// assert_eq!(ByteSize::bytes_exact(1500).to_string(), "1500 B");
/// assert!("1.5MB".parse::<ByteSize>().is_err());
/// # Ok::<(), quota_core::upload::ByteSizeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// Exactly `n` bytes.
    pub const fn bytes_exact(n: u64) -> Self {
        ByteSize(n)
    }

    /// `n` KiB (`n * 1024` bytes), saturating at `u64::MAX`.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n.saturating_mul(KIB))
    }

    /// `n` MiB (`n * 1024 * 1024` bytes), saturating at `u64::MAX`.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n.saturating_mul(MIB))
    }

    /// `n` GiB, saturating at `u64::MAX`.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n.saturating_mul(GIB))
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl From<u64> for ByteSize {
    fn from(n: u64) -> Self {
        ByteSize(n)
    }
}

impl From<ByteSize> for u64 {
    fn from(size: ByteSize) -> Self {
        size.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if n != 0 && n % unit == 0 {
                return write!(f, "{} {name}", n / unit);
            }
        }
        write!(f, "{n} B")
    }
}

/// Why a byte size could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ByteSizeError {
    /// The text was empty.
    #[error("empty byte size: expected a whole number with an optional unit, like \"10MiB\"")]
    Empty,
    /// The number part was missing or not a whole number.
    #[error("invalid byte size {input:?}: expected a whole number with an optional unit, like \"10MiB\" (no fractions)")]
    InvalidNumber {
        /// The text as given.
        input: String,
    },
    /// The unit was not one we know.
    #[error("unknown unit {unit:?} in byte size {input:?}: use B, KB/KiB, MB/MiB, GB/GiB or TB/TiB (all powers of 1024)")]
    UnknownUnit {
        /// The unit as given.
        unit: String,
        /// The text as given.
        input: String,
    },
    /// The size does not fit in 64 bits.
    #[error("byte size {input:?} is too large")]
    Overflow {
        /// The text as given.
        input: String,
    },
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        if text.is_empty() {
            return Err(ByteSizeError::Empty);
        }
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, rest) = text.split_at(digits_end);
        let invalid = || ByteSizeError::InvalidNumber {
            input: input.to_owned(),
        };
        if digits.is_empty() || rest.starts_with(['.', ',']) {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| ByteSizeError::Overflow {
            input: input.to_owned(),
        })?;
        let unit = rest.trim();
        let scale = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => KIB,
            "m" | "mb" | "mib" => MIB,
            "g" | "gb" | "gib" => GIB,
            "t" | "tb" | "tib" => TIB,
            _ => {
                return Err(ByteSizeError::UnknownUnit {
                    unit: unit.to_owned(),
                    input: input.to_owned(),
                })
            }
        };
        n.checked_mul(scale)
            .map(ByteSize)
            .ok_or_else(|| ByteSizeError::Overflow {
                input: input.to_owned(),
            })
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::ByteSize;
    use core::fmt;
    use serde::de::{self, Visitor};

    impl serde::Serialize for ByteSize {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self)
        }
    }

    impl<'de> serde::Deserialize<'de> for ByteSize {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(ByteSizeVisitor)
        }
    }

    struct ByteSizeVisitor;

    impl Visitor<'_> for ByteSizeVisitor {
        type Value = ByteSize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte size: a number of bytes, or a string like \"10MiB\"")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
            Ok(ByteSize(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
            u64::try_from(v)
                .map(ByteSize)
                .map_err(|_| E::custom(format!("byte size {v} is negative")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
            v.parse().map_err(E::custom)
        }
    }
}
