//! Checks a parsed [`LabSpec`] and turns it into a [`Lab`], or lists every problem found [pure].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde_saphyr::Spanned;

use super::ids::LabId;
use super::lab::*;
use super::size::ByteSize;
use super::spec::*;
use super::{Pos, Problem};

/// Offset of the first node address inside a network: `.1` is the host, `.2`–`.9` are kept free.
pub const FIRST_NODE_OFFSET: u32 = 10;
/// Nodes in one lab at most (one byte of the MAC, and room in a /24).
pub const MAX_NODES: usize = 200;
const MAX_NAME_LEN: usize = 32;
const MIN_MEMORY: ByteSize = ByteSize::mib(256);
const MIN_DISK: ByteSize = ByteSize::gib(2);
const MAX_VCPUS: u32 = 64;

/// What validation needs to know besides the file.
pub struct ValidateCtx<'a> {
    /// How the file is named in messages.
    pub file: &'a str,
    /// Folder relative paths in the file are resolved against.
    pub base_dir: Option<&'a Path>,
    /// Names of the built-in image recipes.
    pub recipes: &'a [&'a str],
}

fn pos<T>(s: &Spanned<T>) -> Option<Pos> {
    let l = s.referenced;
    if l.line() == 0 {
        None
    } else {
        Some(Pos {
            line: l.line(),
            column: l.column(),
        })
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(
        &mut self,
        at: Option<Pos>,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Problem {
            pos: at,
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }
}

/// True for a name usable as a DNS label and inside libvirt object names:
/// lowercase letters, digits and inner hyphens, starting with a letter.
pub fn is_dns_safe(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn dns_fix(what: &str) -> String {
    format!(
        "use 1 to {MAX_NAME_LEN} lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen, for the {what}"
    )
}

fn size_of(
    p: &mut Problems,
    v: &Spanned<Scalar>,
    field: &str,
    allow_none: bool,
) -> Option<Option<ByteSize>> {
    let text = v.value.to_string();
    if allow_none && (text == "none" || text == "0") {
        return Some(None);
    }
    match ByteSize::parse(&text) {
        Ok(b) if b.bytes() == 0 && allow_none => Some(None),
        Ok(b) => Some(Some(b)),
        Err(e) => {
            let none = if allow_none { ", or none" } else { "" };
            p.add(
                pos(v),
                field,
                format!("{e}"),
                format!("write a whole number with a unit K, M, G or T, like 512M or 2G{none}"),
            );
            None
        }
    }
}

fn hardening(p: &mut Problems, base: &Hardening, spec: &HardeningSpec, field: &str) -> Hardening {
    let mut h = base.clone();
    if let Some(s) = &spec.swap
        && let Some(v) = size_of(p, s, &format!("{field}.swap"), true)
    {
        h.swap = v;
    }
    if let Some(t) = &spec.tmp_size {
        match size_of(p, t, &format!("{field}.tmp_size"), true) {
            Some(Some(v)) if v < ByteSize::mib(64) => p.add(
                pos(t),
                format!("{field}.tmp_size"),
                format!("{v} is too small for /tmp"),
                "use at least 64M, or none to keep the guest's default",
            ),
            Some(v) => h.tmp_size = v,
            None => {}
        }
    }
    if let Some(v) = spec.persistent {
        h.persistent = v;
    }
    if let Some(v) = spec.telemetry {
        h.telemetry = v;
    }
    if let Some(v) = spec.ipv6 {
        h.ipv6 = v;
    }
    h
}

fn default_cidr(id: LabId, kind: NetKind) -> Ipv4Network {
    let third = id.bytes()[0];
    let second = match kind {
        NetKind::Private => 30,
        NetKind::Public => 31,
    };
    // A /24 always fits: the prefix is constant and valid.
    Ipv4Network::new(Ipv4Addr::new(172, second, third, 0), 24)
        .unwrap_or_else(|_| unreachable!("/24 is a valid prefix"))
}

fn default_ipv6(lab: &str, kind: NetKind) -> Ipv6Network {
    let g = LabId::ula_global_id(lab);
    let subnet: u16 = match kind {
        NetKind::Private => 1,
        NetKind::Public => 2,
    };
    let addr = Ipv6Addr::new(
        0xfd00 | u16::from(g[0]),
        (u16::from(g[1]) << 8) | u16::from(g[2]),
        (u16::from(g[3]) << 8) | u16::from(g[4]),
        subnet,
        0,
        0,
        0,
        0,
    );
    Ipv6Network::new(addr, 64).unwrap_or_else(|_| unreachable!("/64 is a valid prefix"))
}

fn network(
    p: &mut Problems,
    lab: &str,
    kind: NetKind,
    spec: Option<&Spanned<NetworkSpec>>,
) -> Network {
    let field = format!("networks.{kind}");
    let id = LabId::of(lab);
    let mut net = Network {
        kind,
        cidr: default_cidr(id, kind),
        ipv6: match kind {
            NetKind::Private => None,
            NetKind::Public => Some(default_ipv6(lab, kind)),
        },
        mode: match kind {
            NetKind::Private => NetMode::Isolated,
            NetKind::Public => NetMode::Nat,
        },
    };
    let Some(spec) = spec else { return net };
    let spec = &spec.value;
    if let Some(c) = &spec.cidr
        && c.value != "auto"
    {
        match c.value.parse::<Ipv4Network>() {
            Ok(n) if n.network() != n.ip() => p.add(
                pos(c),
                format!("{field}.cidr"),
                format!("{} has host bits set", c.value),
                format!("write the network address: {}/{}", n.network(), n.prefix()),
            ),
            Ok(n) if n.prefix() > 28 => p.add(
                pos(c),
                format!("{field}.cidr"),
                format!("/{} leaves no room for nodes", n.prefix()),
                "use a prefix of /28 or shorter, like /24",
            ),
            Ok(n) if !c.value.contains('/') => p.add(
                pos(c),
                format!("{field}.cidr"),
                format!("{} has no prefix length", n.ip()),
                format!("write it as a CIDR, like {}/24", n.ip()),
            ),
            Ok(n) => net.cidr = n,
            Err(_) => p.add(
                pos(c),
                format!("{field}.cidr"),
                format!("\"{}\" is not an IPv4 CIDR", c.value),
                "write an IPv4 network like 10.10.0.0/24, or auto",
            ),
        }
    }
    if let Some(v) = &spec.ipv6 {
        match v.value.as_str() {
            "none" => net.ipv6 = None,
            "auto" => net.ipv6 = Some(default_ipv6(lab, kind)),
            text => match text.parse::<Ipv6Network>() {
                Ok(n) if n.prefix() != 64 => p.add(
                    pos(v),
                    format!("{field}.ipv6"),
                    format!("prefix /{} is not /64", n.prefix()),
                    "use a /64: libvirt's DHCPv6 and router advertisements need one, e.g. fd00:1:2:3::/64",
                ),
                Ok(n) if n.network() != n.ip() => p.add(
                    pos(v),
                    format!("{field}.ipv6"),
                    format!("{text} has host bits set"),
                    format!("write the prefix itself: {}/64", n.network()),
                ),
                Ok(n) => net.ipv6 = Some(n),
                Err(_) => p.add(
                    pos(v),
                    format!("{field}.ipv6"),
                    format!("\"{text}\" is not an IPv6 prefix"),
                    "write a /64 like fd00:1:2:3::/64, or auto, or none",
                ),
            },
        }
    }
    if let Some(m) = &spec.mode {
        net.mode = match m.value {
            NetModeSpec::Isolated | NetModeSpec::None => NetMode::Isolated,
            NetModeSpec::Nat => NetMode::Nat,
            NetModeSpec::Route => NetMode::Route,
        };
    }
    net
}

fn image(p: &mut Problems, ctx: &ValidateCtx<'_>, spec: Option<&Spanned<String>>) -> ImageRef {
    let Some(s) = spec else {
        return ImageRef::Recipe(DEFAULT_IMAGE.to_string());
    };
    let v = s.value.as_str();
    let looks_like_path = v.contains('/')
        || [".qcow2", ".img", ".raw"]
            .iter()
            .any(|ext| v.ends_with(ext));
    if looks_like_path {
        let path = PathBuf::from(v);
        let path = match ctx.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        };
        ImageRef::File(path)
    } else if ctx.recipes.contains(&v) {
        ImageRef::Recipe(v.to_string())
    } else {
        p.add(
            pos(s),
            "image",
            format!("\"{v}\" is neither a built-in recipe nor a path to an image file"),
            format!(
                "use one of: {}; or a path to a qcow2 file (import it first with `dcos-lab image import`)",
                ctx.recipes.join(", ")
            ),
        );
        ImageRef::Recipe(DEFAULT_IMAGE.to_string())
    }
}

/// Validates `spec`; on success every field of the returned [`Lab`] is concrete.
pub fn validate(spec: &LabSpec, ctx: &ValidateCtx<'_>) -> Result<Lab, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let name = spec.name.value.clone();
    if !is_dns_safe(&name) {
        p.add(
            pos(&spec.name),
            "name",
            format!("lab name \"{name}\" is not DNS-safe"),
            dns_fix("lab name"),
        );
    }

    let image = image(&mut p, ctx, spec.image.as_ref());
    let accel = match spec.accel.as_ref().map(|a| a.value) {
        None | Some(AccelSpec::Auto) => AccelChoice::Auto,
        Some(AccelSpec::Kvm) => AccelChoice::Kvm,
        Some(AccelSpec::Tcg) => AccelChoice::Tcg,
    };

    let firstboot = match spec.firstboot.as_ref().map(|f| f.value) {
        None | Some(FirstBootSpec::Fast) => FirstBoot::Fast,
        Some(FirstBootSpec::CloudInit) => FirstBoot::CloudInit,
    };
    let nets = spec.networks.as_ref();
    let (private, public) = networks(&mut p, &name, nets);

    let lab_hardening = match &spec.hardening {
        Some(h) => hardening(&mut p, &Hardening::default(), &h.value, "hardening"),
        None => Hardening::default(),
    };

    // `hardening.ipv6: false` takes IPv6 off the public network too (`auto` follows it), unless
    // the file gives a prefix.
    let public_ipv6_given = nets
        .and_then(|n| n.public.as_ref())
        .and_then(|p| p.value.ipv6.as_ref())
        .is_some_and(|v| v.value != "auto");
    let mut public = public;
    if !lab_hardening.ipv6 && !public_ipv6_given {
        public.ipv6 = None;
    }
    let hosts = hosts(&mut p, spec.hosts.as_ref());
    let placement = match spec.placement.as_ref().map(|s| s.value) {
        None | Some(PlacementSpec::Manual) => Placement::Manual,
        Some(PlacementSpec::Auto) => Placement::Auto,
    };
    if spec.nodes.value.is_empty() {
        p.add(
            pos(&spec.nodes),
            "nodes",
            "the lab has no nodes",
            "add a boot node, one master and at least one agent",
        );
    }
    let mut declared = Declared::default();
    for (i, ns) in spec.nodes.value.iter().enumerate() {
        node_group(
            &mut p,
            i,
            ns,
            &lab_hardening,
            firstboot,
            &hosts,
            &mut declared,
        );
    }
    let nodes = declared.nodes;

    if nodes.len() > MAX_NODES {
        p.add(
            pos(&spec.nodes),
            "nodes",
            format!("{} nodes is more than a lab can hold", nodes.len()),
            format!("use at most {MAX_NODES} nodes"),
        );
    }
    if !spec.nodes.value.is_empty() {
        let boots = nodes.iter().filter(|n| n.role == Role::Boot).count();
        if boots != 1 {
            p.add(
                pos(&spec.nodes),
                "nodes",
                format!("the lab has {boots} boot nodes"),
                "declare exactly one node with role: boot",
            );
        }
        let masters = nodes.iter().filter(|n| n.role == Role::Master).count();
        if ![1, 3, 5].contains(&masters) {
            p.add(
                pos(&spec.nodes),
                "nodes",
                format!("the lab has {masters} masters"),
                "use 1, 3 or 5 masters: ZooKeeper needs an odd quorum",
            );
        }
    }

    room_on_networks(&mut p, &nodes, [&private, &public], nets);

    let dcos = dcos(&mut p, ctx, spec.dcos.as_ref(), &name);

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Lab {
        name,
        source: ctx.file.to_string(),
        image,
        accel,
        firstboot,
        networks: Networks { private, public },
        nodes,
        hardening: lab_hardening,
        dcos,
        hosts,
        placement,
        owner: 0,
    })
}

/// Transports a lab host's libvirt URI may use (`qemu+unix` with `?socket=` reaches a daemon on
/// this machine at another socket, as the test harness's hosts are).
const URI_TRANSPORTS: [&str; 6] = ["", "+ssh", "+libssh", "+libssh2", "+tcp", "+tls"];
/// The networks a node is on: the private one always; the public one when listed, or by
/// default for a public agent (which must be on it).
fn node_networks(
    p: &mut Problems,
    field: &str,
    base: &str,
    role: Role,
    listed: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Vec<NetKind> {
    let mut networks = vec![NetKind::Private];
    match listed {
        None => {
            if role == Role::AgentPublic {
                networks.push(NetKind::Public);
            }
        }
        Some(list) => {
            let mut named = BTreeSet::new();
            for net in &list.value {
                let kind = match net.value.as_str() {
                    "private" => NetKind::Private,
                    "public" => NetKind::Public,
                    other => {
                        p.add(
                            pos(net),
                            format!("{field}.networks"),
                            format!("unknown network \"{other}\""),
                            "use private and/or public",
                        );
                        continue;
                    }
                };
                if !named.insert(kind) {
                    p.add(
                        pos(net),
                        format!("{field}.networks"),
                        format!("network \"{kind}\" is listed twice"),
                        "list each network once",
                    );
                }
            }
            if !named.contains(&NetKind::Private) {
                p.add(
                    pos(list),
                    format!("{field}.networks"),
                    format!("node \"{base}\" is not on the private network"),
                    "add private: every node talks to the others over it",
                );
            }
            if named.contains(&NetKind::Public) {
                networks.push(NetKind::Public);
            } else if role == Role::AgentPublic {
                p.add(
                    pos(list),
                    format!("{field}.networks"),
                    format!("public agent \"{base}\" is not on the public network"),
                    "add public to its networks",
                );
            }
        }
    }
    networks
}

/// The lab's two networks, each checked, and not overlapping one another.
fn networks(p: &mut Problems, name: &str, nets: Option<&NetworksSpec>) -> (Network, Network) {
    let private = network(
        p,
        name,
        NetKind::Private,
        nets.and_then(|n| n.private.as_ref()),
    );
    let public = network(
        p,
        name,
        NetKind::Public,
        nets.and_then(|n| n.public.as_ref()),
    );
    if private.cidr.overlaps(public.cidr) {
        let at = nets
            .and_then(|n| n.public.as_ref())
            .and_then(|s| s.value.cidr.as_ref())
            .and_then(pos);
        p.add(
            at,
            "networks.public.cidr",
            format!(
                "{} overlaps the private network {}",
                public.cidr, private.cidr
            ),
            "give the two networks separate ranges, e.g. 10.10.0.0/24 and 10.11.0.0/24",
        );
    }
    if let (Some(a), Some(b)) = (private.ipv6, public.ipv6)
        && a.overlaps(b)
    {
        let at = nets
            .and_then(|n| n.public.as_ref())
            .and_then(|s| s.value.ipv6.as_ref())
            .and_then(pos);
        p.add(
            at,
            "networks.public.ipv6",
            format!("{b} overlaps the private network's {a}"),
            "give the two networks different /64 prefixes",
        );
    }
    (private, public)
}

/// The lab's `dcos:` section: the installer (relative to the lab file), the bootstrap port,
/// the cluster name (the lab's by default) and the config keys, each checked against DC/OS's.
fn dcos(
    p: &mut Problems,
    ctx: &ValidateCtx<'_>,
    spec: Option<&Spanned<DcosSpec>>,
    name: &str,
) -> Dcos {
    let d = spec.map(|d| &d.value);
    let installer = d.and_then(|d| d.installer.as_ref()).map(|i| {
        let path = PathBuf::from(&i.value);
        match ctx.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        }
    });
    let bootstrap_port = match d.and_then(|d| d.bootstrap_port.as_ref()) {
        None => DEFAULT_BOOTSTRAP_PORT,
        Some(port) if port.value == 0 || port.value > 65535 || port.value == 22 => {
            p.add(
                pos(port),
                "dcos.bootstrap_port",
                format!("port {} cannot serve the bootstrap", port.value),
                format!("use a free TCP port from 1 to 65535 other than 22, e.g. {DEFAULT_BOOTSTRAP_PORT}"),
            );
            DEFAULT_BOOTSTRAP_PORT
        }
        Some(port) => u16::try_from(port.value).unwrap_or(DEFAULT_BOOTSTRAP_PORT),
    };
    let cluster_name = d
        .and_then(|d| d.cluster_name.as_ref())
        .map(|c| c.value.clone())
        .unwrap_or_else(|| name.to_string());
    let mut config = BTreeMap::new();
    if let Some(c) = d.and_then(|d| d.config.as_ref()) {
        for (k, v) in &c.value.0 {
            if !super::dcos_keys::known(&k.value) {
                p.add(
                    pos(k),
                    format!("dcos.config.{}", k.value),
                    format!("the DC/OS installer has no config key \"{}\"", k.value),
                    format!(
                        "did you mean `{}`? (the keys of genconf/config.yaml, from DC/OS's gen/calc.py)",
                        super::dcos_keys::closest(&k.value)
                    ),
                );
            }
            config.insert(k.value.clone(), v.clone());
        }
    }
    Dcos {
        enabled: d.is_some(),
        installer,
        bootstrap_port,
        cluster_name,
        config,
    }
}

/// Room for every node on each network: node i takes host offset FIRST_NODE_OFFSET + i.
fn room_on_networks(
    p: &mut Problems,
    nodes: &[Node],
    networks: [&Network; 2],
    nets: Option<&NetworksSpec>,
) {
    for net in networks {
        let Some(last) = nodes
            .iter()
            .filter(|n| n.on(net.kind))
            .map(|n| u32::from(n.index))
            .max()
        else {
            continue;
        };
        let hosts = 1u64 << (32 - u32::from(net.cidr.prefix()));
        let needed = u64::from(FIRST_NODE_OFFSET + last) + 2; // + broadcast, + 1 for the count
        if needed > hosts {
            let at = nets
                .and_then(|n| match net.kind {
                    NetKind::Private => n.private.as_ref(),
                    NetKind::Public => n.public.as_ref(),
                })
                .and_then(|s| s.value.cidr.as_ref())
                .and_then(pos);
            let mut shorter = net.cidr.prefix();
            while shorter > 0 && (1u64 << (32 - u32::from(shorter))) < needed {
                shorter -= 1;
            }
            p.add(
                at,
                format!("networks.{}.cidr", net.kind),
                format!(
                    "{} has {} addresses, too few for node #{} (addresses start at .{FIRST_NODE_OFFSET})",
                    net.cidr,
                    hosts,
                    last + 1
                ),
                format!("use a prefix of /{shorter} or shorter"),
            );
        }
    }
}

/// A node's memory, disk and vCPUs: the defaults, or what it asks within the bounds a guest
/// needs (a size out of bounds is a problem, and `None`).
fn resources(
    p: &mut Problems,
    field: &str,
    n: &NodeSpec,
) -> (Option<ByteSize>, Option<ByteSize>, u32) {
    let memory = match &n.memory {
        None => Some(DEFAULT_MEMORY),
        Some(m) => match size_of(p, m, &format!("{field}.memory"), false).flatten() {
            Some(b) if b < MIN_MEMORY => {
                p.add(
                    pos(m),
                    format!("{field}.memory"),
                    format!("{b} is below the {MIN_MEMORY} a guest needs to boot"),
                    format!("give the node at least {MIN_MEMORY}"),
                );
                None
            }
            other => other,
        },
    };
    let disk = match &n.disk {
        None => Some(DEFAULT_DISK),
        Some(d) => match size_of(p, d, &format!("{field}.disk"), false).flatten() {
            Some(b) if b < MIN_DISK => {
                p.add(
                    pos(d),
                    format!("{field}.disk"),
                    format!("{b} is smaller than the {MIN_DISK} the image needs"),
                    format!("give the node a disk of at least {MIN_DISK}"),
                );
                None
            }
            other => other,
        },
    };
    let vcpus = match &n.vcpus {
        None => DEFAULT_VCPUS,
        Some(v) if v.value == 0 || v.value > MAX_VCPUS => {
            p.add(
                pos(v),
                format!("{field}.vcpus"),
                format!("{} vCPUs is out of range", v.value),
                format!("use 1 to {MAX_VCPUS}"),
            );
            DEFAULT_VCPUS
        }
        Some(v) => v.value,
    };
    (memory, disk, vcpus)
}

/// The nodes declared so far, and the entry of `nodes:` that first used each name.
#[derive(Default)]
struct Declared {
    nodes: Vec<Node>,
    seen: BTreeMap<String, usize>,
}

/// Entry `i` of `nodes:`: one node, or `count` of them, with the lab's hardening and first boot
/// unless it sets its own; each problem with its file position.
fn node_group(
    p: &mut Problems,
    i: usize,
    ns: &Spanned<NodeSpec>,
    lab_hardening: &Hardening,
    firstboot: FirstBoot,
    hosts: &[Host],
    declared: &mut Declared,
) {
    let at = pos(ns);
    let n = &ns.value;
    let field = format!("nodes[{i}]");
    let base = n.name.value.clone();
    let role = match n.role.value {
        RoleSpec::Boot => Role::Boot,
        RoleSpec::Master => Role::Master,
        RoleSpec::AgentPrivate => Role::AgentPrivate,
        RoleSpec::AgentPublic => Role::AgentPublic,
    };
    let count = match &n.count {
        None => None,
        Some(c) if c.value == 0 || c.value as usize > MAX_NODES => {
            p.add(
                pos(c),
                format!("{field}.count"),
                format!("count {} is out of range", c.value),
                format!("use a count from 1 to {MAX_NODES}, or leave it out for one node"),
            );
            None
        }
        Some(c) if role == Role::Boot && c.value != 1 => {
            p.add(
                pos(c),
                format!("{field}.count"),
                format!("a boot node cannot have count {}", c.value),
                "a lab has exactly one boot node: remove count",
            );
            None
        }
        Some(c) => Some(c.value),
    };
    let (memory, disk, vcpus) = resources(p, &field, n);
    let networks = node_networks(p, &field, &base, role, n.networks.as_ref());
    let node_hardening = match &n.hardening {
        Some(h) => hardening(p, lab_hardening, &h.value, &format!("{field}.hardening")),
        None => lab_hardening.clone(),
    };
    let node_firstboot = match n.firstboot.as_ref().map(|f| f.value) {
        None => firstboot,
        Some(FirstBootSpec::Fast) => FirstBoot::Fast,
        Some(FirstBootSpec::CloudInit) => FirstBoot::CloudInit,
    };
    let host = n.host.as_ref().and_then(|h| {
        if hosts.iter().any(|known| known.name == h.value) {
            Some(h.value.clone())
        } else {
            let names: Vec<&str> = hosts.iter().map(|k| k.name.as_str()).collect();
            p.add(
                pos(h),
                format!("{field}.host"),
                format!("unknown host \"{}\"", h.value),
                format!(
                    "use one of {} (add other hosts under hosts:, name: libvirt URI)",
                    names.join(", ")
                ),
            );
            None
        }
    });
    let names: Vec<String> = match count {
        Some(c) => (1..=c).map(|k| format!("{base}{k}")).collect(),
        None => vec![base.clone()],
    };
    for node_name in names {
        if !is_dns_safe(&node_name) {
            p.add(
                pos(&n.name),
                format!("{field}.name"),
                format!("node name \"{node_name}\" is not DNS-safe"),
                dns_fix("node name"),
            );
        } else if let Some(first) = declared.seen.get(&node_name) {
            p.add(
                pos(&n.name),
                format!("{field}.name"),
                format!("node name \"{node_name}\" is already used by nodes[{first}]"),
                "give every node a unique name (count adds 1, 2, ... to the name)",
            );
        }
        declared.seen.entry(node_name.clone()).or_insert(i);
        let index = declared.nodes.len();
        declared.nodes.push(Node {
            name: node_name,
            index: u8::try_from(index).unwrap_or(u8::MAX),
            role,
            memory: memory.unwrap_or(DEFAULT_MEMORY),
            vcpus,
            disk: disk.unwrap_or(DEFAULT_DISK),
            networks: networks.clone(),
            hardening: node_hardening.clone(),
            firstboot: node_firstboot,
            host: host.clone(),
        });
    }
    let _ = at;
}

/// Checks `hosts:` and returns the lab's hosts, `local` first.
fn hosts(p: &mut Problems, spec: Option<&Spanned<OrderedMap<Spanned<String>>>>) -> Vec<Host> {
    let mut out = vec![Host {
        name: LOCAL_HOST.to_string(),
        uri: None,
    }];
    let Some(spec) = spec else { return out };
    for (name, uri) in &spec.value.0 {
        let field = format!("hosts.{}", name.value);
        if name.value == LOCAL_HOST {
            p.add(
                pos(name),
                field,
                "\"local\" is the host dcos-lab runs against (--uri), always part of the lab",
                "remove it from hosts:, or give that host another name",
            );
            continue;
        }
        if !is_dns_safe(&name.value) {
            p.add(
                pos(name),
                field,
                format!("host name \"{}\" is not DNS-safe", name.value),
                dns_fix("host name"),
            );
            continue;
        }
        if out.iter().any(|h| h.name == name.value) {
            p.add(
                pos(name),
                field,
                format!("host \"{}\" is named twice", name.value),
                "name each host once",
            );
            continue;
        }
        if let Err(why) = check_uri(&uri.value) {
            p.add(
                pos(uri),
                field,
                format!(
                    "\"{}\" is not a libvirt URI dcos-lab can use: {why}",
                    uri.value
                ),
                "use the system daemon's URI, e.g. qemu+ssh://root@runner2/system",
            );
            continue;
        }
        if let Some(other) = out
            .iter()
            .find(|h| h.uri.as_deref() == Some(uri.value.as_str()))
        {
            p.add(
                pos(uri),
                field,
                format!(
                    "host \"{}\" has the URI of host \"{}\"",
                    name.value, other.name
                ),
                "give each host its own URI (one libvirt daemon is one host)",
            );
            continue;
        }
        out.push(Host {
            name: name.value.clone(),
            uri: Some(uri.value.clone()),
        });
    }
    out
}

/// A QEMU driver URI of a system daemon: `qemu[+transport]://[user@]host[:port]/system[?...]`
/// (`qemu+unix:///system?socket=...` for a daemon on this machine).
fn check_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err("it has no scheme (qemu+ssh://...)".into());
    };
    let transport = scheme.strip_prefix("qemu").ok_or_else(|| {
        format!(
            "the driver is \"{}\", not qemu",
            scheme.split('+').next().unwrap_or(scheme)
        )
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = path.split('?').next().unwrap_or(path);
    if path != "/system" {
        return Err(format!(
            "its path is \"{path}\", not /system (a session daemon cannot make the lab's bridges)"
        ));
    }
    match transport {
        "+unix" if authority.is_empty() && rest.contains("?socket=") => Ok(()),
        "+unix" => Err("qemu+unix needs no host and a ?socket= path".into()),
        t if !URI_TRANSPORTS.contains(&t) => Err(format!(
            "unknown transport \"{}\"",
            t.trim_start_matches('+')
        )),
        _ if authority.is_empty() => {
            Err("it names no host (qemu:///system is the local host)".into())
        }
        _ => Ok(()),
    }
}
