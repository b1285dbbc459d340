//! A lab's other hosts: reaching each one; each host's share of a lab; the error of a placement
//! that does not fit [I/O in `reach`; the rest pure].

use std::collections::BTreeMap;

use crate::model::{LOCAL_HOST, Lab};
use crate::names::LabDirs;
use crate::plan::AddressPlan;
use crate::plan::placement::NodePlacement;
use crate::render::BootImage;

use crate::ops::Ctx;

/// Opens a connection to every host of `lab` besides the local one (all at once) and records
/// them in `ctx`. A host that does not answer is bad input naming the host, its URI and the fix:
/// nothing has been made on any host yet.
pub async fn reach(ctx: &Ctx, lab: &Lab) -> anyhow::Result<()> {
    let hosts: Vec<(String, String)> = lab
        .hosts
        .iter()
        .filter(|h| h.name != LOCAL_HOST)
        .filter_map(|h| h.uri.clone().map(|u| (h.name.clone(), u)))
        .collect();
    reach_uris(ctx, &lab.source, &hosts, true).await
}

/// Opens a connection to every host of `hosts` (name, URI) not reached yet, all at once.
/// `source` is where the hosts come from (the lab file, or the lab as libvirt records it).
/// `from_file`: a host the lab file names that does not answer is bad input (nothing is made
/// yet); a host of a lab that exists is a failure (it was there; the fix is to bring it back).
pub async fn reach_uris(
    ctx: &Ctx,
    source: &str,
    hosts_wanted: &[(String, String)],
    from_file: bool,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for (name, uri) in hosts_wanted {
        if ctx.host(name).is_some() {
            continue;
        }
        let (name, uri, connect) = (name.clone(), uri.clone(), ctx.connect.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let r = connect(&uri);
            (name, uri, r)
        }));
    }
    let mut hosts = BTreeMap::new();
    let mut unreached = Vec::new();
    for t in tasks {
        let (name, uri, r) = t.await?;
        match r {
            Ok(c) => {
                hosts.insert(name, c);
            }
            Err(e) if from_file => unreached.push(format!(
                "{source}: hosts.{name}: {}\n  fix: start libvirtd there and check that `virsh -c '{uri}' version` answers from this machine, or take the host out of the lab file",
                crate::error_chain(&e)
            )),
            Err(e) => unreached.push(format!(
                "{source} has nodes or networks on host {name}, which does not answer: {}\n  fix: bring the host back (libvirtd answering `virsh -c '{uri}' version` from this machine); the next `up` or `down` then takes over",
                crate::error_chain(&e)
            )),
        }
    }
    if !unreached.is_empty() {
        if from_file {
            return Err(crate::BadInput(unreached.join("\n")).into());
        }
        anyhow::bail!("{}", unreached.join("\n"));
    }
    if !hosts.is_empty() {
        ctx.add_hosts(hosts);
    }
    Ok(())
}

/// The bad input of a placement that does not fit: every problem with the file, field and fix.
pub fn unfit(lab: &Lab, problems: &[crate::model::Problem]) -> anyhow::Error {
    crate::BadInput(format!(
        "the lab's hosts cannot hold its nodes\n{}",
        problems
            .iter()
            .map(|p| p.render(&lab.source))
            .collect::<Vec<_>>()
            .join("\n")
    ))
    .into()
}

/// Where the base image lives in a pool on a host other than the first (uploaded there).
pub fn remote_image(dirs: &LabDirs, local: &BootImage) -> BootImage {
    let pool = dirs.pool();
    BootImage {
        disk: pool.join(format!("image.{}", local.format)),
        format: local.format.clone(),
        kernel: local.kernel.as_ref().map(|_| pool.join("image.kernel")),
        initrd: local.initrd.as_ref().map(|_| pool.join("image.initrd")),
        cmdline: local.cmdline.clone(),
    }
}

/// One host's share of a lab: its nodes, the networks it gets, and where its disks and base
/// image are there.
#[derive(Debug, Clone)]
pub struct Share {
    /// The lab without the nodes of other hosts.
    pub sub: Lab,
    /// The lab's first host gets every network (the host addresses, DHCP and DNS live there,
    /// whether or not nodes do); another host only those its nodes are on, as VLANs on the
    /// overlay bridge (`render::overlay_network_xml`).
    pub addrs: AddressPlan,
    /// The lab's directories as this host's QEMU sees them.
    pub dirs: LabDirs,
    /// The base image there.
    pub image: BootImage,
}

/// `host`'s share of `lab` as `placed` places its nodes (`None`: a lab on one host, all of it
/// on the local host). `local_dirs` and `local_image` are the first host's.
pub fn share(
    lab: &Lab,
    addrs: &AddressPlan,
    placed: Option<&NodePlacement>,
    host: &str,
    local_dirs: &LabDirs,
    local_image: &BootImage,
) -> Share {
    let mut sub = lab.clone();
    let mut addrs = addrs.clone();
    if let Some(placed) = placed {
        sub.nodes.retain(|n| placed.host_of(&n.name) == host);
    }
    if host == LOCAL_HOST {
        return Share {
            sub,
            addrs,
            dirs: local_dirs.clone(),
            image: local_image.clone(),
        };
    }
    addrs
        .networks
        .retain(|net| sub.nodes.iter().any(|n| n.on(net.kind)));
    for net in &mut addrs.networks {
        net.bridge = crate::plan::OVERLAY_BRIDGE.to_string();
    }
    let dirs = LabDirs::remote(&lab.name);
    let image = remote_image(&dirs, local_image);
    Share {
        sub,
        addrs,
        dirs,
        image,
    }
}
