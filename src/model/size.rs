//! Byte sizes as written in lab files (`512M`, `1G`, `20GiB`) [pure].

use std::fmt;
use std::str::FromStr;

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;

/// A size in bytes. Units are binary: `M` and `MiB` both mean 1024² bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// Why a size string was refused; the text is the user-facing reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("\"{0}\" is empty")]
    Empty(String),
    #[error("\"{0}\" has no unit")]
    NoUnit(String),
    #[error("\"{0}\" has an unknown unit \"{1}\"")]
    UnknownUnit(String, String),
    #[error("\"{0}\" is not a whole number followed by a unit")]
    NotANumber(String),
    #[error("\"{0}\" is too large")]
    TooLarge(String),
}

impl ByteSize {
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    pub const fn mib(n: u64) -> Self {
        Self(n * MIB)
    }

    pub const fn gib(n: u64) -> Self {
        Self(n * GIB)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Whole MiB, rounded down.
    pub const fn as_mib(self) -> u64 {
        self.0 / MIB
    }

    /// Whole KiB, rounded down.
    pub const fn as_kib(self) -> u64 {
        self.0 / KIB
    }

    /// Parses `<digits><unit>` where unit is one of K, M, G, T (optionally followed by `i`, `iB` or `B`).
    pub fn parse(text: &str) -> Result<Self, SizeError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(SizeError::Empty(text.to_string()));
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        if digits.is_empty() {
            return Err(SizeError::NotANumber(text.to_string()));
        }
        let unit = unit.trim();
        if unit.is_empty() {
            return Err(SizeError::NoUnit(text.to_string()));
        }
        let mult = match unit {
            "K" | "KiB" | "Ki" | "KB" | "k" => KIB,
            "M" | "MiB" | "Mi" | "MB" => MIB,
            "G" | "GiB" | "Gi" | "GB" => GIB,
            "T" | "TiB" | "Ti" | "TB" => TIB,
            other => {
                if other.chars().any(|c| c.is_ascii_digit() || c == '.') {
                    return Err(SizeError::NotANumber(text.to_string()));
                }
                return Err(SizeError::UnknownUnit(text.to_string(), other.to_string()));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| SizeError::TooLarge(text.to_string()))?;
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| SizeError::TooLarge(text.to_string()))
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly: `1G`, `1536M`, `4096K`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b == 0 {
            return write!(f, "0M");
        }
        for (mult, unit) in [(TIB, "T"), (GIB, "G"), (MIB, "M"), (KIB, "K")] {
            if b.is_multiple_of(mult) {
                return write!(f, "{}{}", b / mult, unit);
            }
        }
        write!(f, "{b}B")
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let cases = [
            ("512M", 512 * MIB),
            ("1G", GIB),
            ("1GiB", GIB),
            ("2048MiB", 2048 * MIB),
            ("10G", 10 * GIB),
            ("64K", 64 * KIB),
            (" 2G ", 2 * GIB),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                ByteSize::parse(text).map(|b| b.bytes()),
                Ok(bytes),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_bad_sizes() {
        assert_eq!(ByteSize::parse("512"), Err(SizeError::NoUnit("512".into())));
        assert_eq!(
            ByteSize::parse("1X"),
            Err(SizeError::UnknownUnit("1X".into(), "X".into()))
        );
        assert_eq!(
            ByteSize::parse("1.5G"),
            Err(SizeError::NotANumber("1.5G".into()))
        );
        assert_eq!(ByteSize::parse("G"), Err(SizeError::NotANumber("G".into())));
        assert_eq!(ByteSize::parse(""), Err(SizeError::Empty("".into())));
        assert!(matches!(
            ByteSize::parse("99999999999999T"),
            Err(SizeError::TooLarge(_))
        ));
    }

    #[test]
    fn displays_in_largest_exact_unit() {
        assert_eq!(ByteSize::gib(1).to_string(), "1G");
        assert_eq!(ByteSize::mib(1536).to_string(), "1536M");
        assert_eq!(ByteSize::mib(512).to_string(), "512M");
    }
}
