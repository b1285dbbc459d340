//! Stable identifiers derived from a lab's name: the seed of its MACs, bridges and default subnets [pure].

use sha2::{Digest, Sha256};

/// 24 bits derived from the lab name with SHA-256, stable across releases and platforms.
/// Two labs whose names share these 24 bits would share MACs and bridge names; `up` refuses
/// the second (its preflight sees the bridge taken) and the fix is another name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabId([u8; 3]);

impl LabId {
    pub fn of(lab_name: &str) -> LabId {
        let d = Sha256::digest(format!("dcos-lab/{lab_name}").as_bytes());
        LabId([d[0], d[1], d[2]])
    }

    pub fn bytes(self) -> [u8; 3] {
        self.0
    }

    /// Six lowercase hex digits.
    pub fn hex(self) -> String {
        format!("{:02x}{:02x}{:02x}", self.0[0], self.0[1], self.0[2])
    }

    /// 40 bits for an IPv6 ULA global ID (RFC 4193), from the same digest.
    pub fn ula_global_id(lab_name: &str) -> [u8; 5] {
        let d = Sha256::digest(format!("dcos-lab/ula/{lab_name}").as_bytes());
        [d[0], d[1], d[2], d[3], d[4]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        assert_eq!(LabId::of("minimal"), LabId::of("minimal"));
        assert_ne!(LabId::of("minimal"), LabId::of("standard"));
        assert_eq!(LabId::of("minimal").hex().len(), 6);
    }
}
