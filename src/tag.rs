//! The metadata tag dcos-lab puts in every domain and network it makes, and reads back to know
//! what a lab owns [pure, leaf].
//!
//! `render` writes it, `driver` reads it from libvirt, `ops` reports from it; it lives here so
//! that none of them imports another for it.

use serde::{Deserialize, Serialize};

/// Namespace of our `<metadata>` element in domains and networks.
pub const METADATA_NS: &str = "https://dcos-lab.dev/xmlns/lab/1";
/// Prefix used for that namespace.
pub const METADATA_PREFIX: &str = "dcoslab";

/// Whether a tag read back is ours (in our namespace), not a look-alike element named `lab`.
pub fn is_ours(tag: &LabTag) -> bool {
    tag.xmlns == METADATA_NS
}

impl LabTag {
    /// The uid of the lab's user.
    pub fn owner(&self) -> u32 {
        self.owner.unwrap_or(0)
    }
}

/// `<dcoslab:lab xmlns:dcoslab=... name=... [node=... role=...] [network=...]/>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabTag {
    #[serde(rename = "@xmlns:dcoslab", default)]
    pub xmlns: String,
    #[serde(rename = "@name")]
    pub lab: String,
    #[serde(rename = "@node", skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    #[serde(rename = "@role", skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
    #[serde(rename = "@network", skip_serializing_if = "Option::is_none", default)]
    pub network: Option<String>,
    /// Hash of the rendered definition, to see whether a lab file changed under a running lab.
    #[serde(rename = "@spec", skip_serializing_if = "Option::is_none", default)]
    pub spec: Option<String>,
    #[serde(rename = "@accel", skip_serializing_if = "Option::is_none", default)]
    pub accel: Option<String>,
    #[serde(rename = "@version", default)]
    pub version: String,
    /// The uid of the user who made the lab; a lab belongs to its user (absent: root, as every
    /// lab made before dcos-lab recorded it was).
    #[serde(rename = "@owner", skip_serializing_if = "Option::is_none", default)]
    pub owner: Option<u32>,
    /// A node's NICs, so `status`, `ssh` and `down` work from libvirt alone, without the lab file.
    #[serde(
        rename = "dcoslab:nic",
        alias = "nic",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nics: Vec<NicTag>,
    /// On the first host's networks of a lab across hosts: the lab's other hosts, so that
    /// `status`, `down` and the rest find every object from libvirt alone.
    #[serde(
        rename = "dcoslab:host",
        alias = "host",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hosts: Vec<HostTag>,
}

/// `<dcoslab:host name=... uri=.../>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostTag {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@uri")]
    pub uri: String,
}

/// `<dcoslab:nic network=... mac=... ipv4=... [ipv6=...]/>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NicTag {
    #[serde(rename = "@network")]
    pub network: String,
    #[serde(rename = "@mac")]
    pub mac: String,
    #[serde(rename = "@ipv4")]
    pub ipv4: String,
    #[serde(rename = "@ipv6", skip_serializing_if = "Option::is_none", default)]
    pub ipv6: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    // quick-xml matches elements by local name when reading, so the prefix is dropped there.
    #[serde(
        rename = "dcoslab:lab",
        alias = "lab",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub lab: Option<LabTag>,
}
