//! The lab file exactly as written: serde types with source locations, no checks [pure].

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scalar that may be written as a number or as text (`memory: 512` or `memory: 512M`),
/// so that validation, not the parser, explains what is wrong with it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Int(u64),
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub accel: Option<Spanned<AccelSpec>>,
    #[serde(default)]
    pub firstboot: Option<Spanned<FirstBootSpec>>,
    #[serde(default)]
    pub networks: Option<NetworksSpec>,
    pub nodes: Spanned<Vec<Spanned<NodeSpec>>>,
    #[serde(default)]
    pub hardening: Option<Spanned<HardeningSpec>>,
    #[serde(default)]
    pub dcos: Option<Spanned<DcosSpec>>,
    /// Other libvirt hosts the lab may use, by name (the local host, `local`, is implied).
    #[serde(default)]
    pub hosts: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// How nodes without a `host:` are placed: on the local host, or spread by free memory.
    #[serde(default)]
    pub placement: Option<Spanned<PlacementSpec>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlacementSpec {
    Manual,
    Auto,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccelSpec {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FirstBootSpec {
    Fast,
    CloudInit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworksSpec {
    #[serde(default)]
    pub private: Option<Spanned<NetworkSpec>>,
    #[serde(default)]
    pub public: Option<Spanned<NetworkSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// `auto` or an IPv4 CIDR.
    #[serde(default)]
    pub cidr: Option<Spanned<String>>,
    /// `auto`, `none`, or an IPv6 prefix.
    #[serde(default)]
    pub ipv6: Option<Spanned<String>>,
    #[serde(default)]
    pub mode: Option<Spanned<NetModeSpec>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetModeSpec {
    Isolated,
    /// Same as `isolated`: no `<forward>` at all.
    None,
    Nat,
    Route,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSpec {
    Boot,
    Master,
    AgentPrivate,
    AgentPublic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: Spanned<String>,
    pub role: Spanned<RoleSpec>,
    #[serde(default)]
    pub memory: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub vcpus: Option<Spanned<u32>>,
    #[serde(default)]
    pub disk: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub networks: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub count: Option<Spanned<u32>>,
    #[serde(default)]
    pub hardening: Option<Spanned<HardeningSpec>>,
    /// Overrides the lab's `firstboot` for this node.
    #[serde(default)]
    pub firstboot: Option<Spanned<FirstBootSpec>>,
    /// The host (a name from `hosts:`, or `local`) this node (every node of its `count`) runs on.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardeningSpec {
    /// A size, or `none`/0 for no swap file.
    #[serde(default)]
    pub swap: Option<Spanned<Scalar>>,
    /// A size, or `none` to leave the guest's default /tmp.
    #[serde(default)]
    pub tmp_size: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub persistent: Option<bool>,
    #[serde(default)]
    pub telemetry: Option<bool>,
    #[serde(default)]
    pub ipv6: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcosSpec {
    #[serde(default)]
    pub installer: Option<Spanned<String>>,
    #[serde(default)]
    pub bootstrap_port: Option<Spanned<u32>>,
    #[serde(default)]
    pub cluster_name: Option<Spanned<String>>,
    #[serde(default)]
    pub config: Option<Spanned<ConfigMap>>,
}

/// `dcos.config`: genconf keys in file order, each with where it was written (so an unknown key
/// is reported at its own line).
pub type ConfigMap = OrderedMap<serde_json::Value>;

/// A mapping kept in file order, each key with where it was written.
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping, e.g. `{dns_search: lab}` or `{runner2: qemu+ssh://root@runner2/system}`")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<OrderedMap<V>, E> {
                Ok(OrderedMap::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<OrderedMap<V>, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<OrderedMap<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Spanned<String>, V>()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}
