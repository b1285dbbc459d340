//! A lab's other hosts: reaching each one; the error of a placement that does not fit [I/O].

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::driver::{self, Hv};
use crate::model::{LOCAL_HOST, Lab};

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
        let (name, uri) = (name.clone(), uri.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let r = driver::Libvirt::open(Some(&uri));
            (name, uri, r)
        }));
    }
    let mut hosts = BTreeMap::new();
    let mut unreached = Vec::new();
    for t in tasks {
        let (name, uri, r) = t.await?;
        match r {
            Ok(c) => {
                hosts.insert(name, Arc::new(c) as Hv);
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
pub fn remote_image(
    dirs: &crate::names::LabDirs,
    local: &crate::render::BootImage,
) -> crate::render::BootImage {
    let pool = dirs.pool();
    crate::render::BootImage {
        disk: pool.join(format!("image.{}", local.format)),
        format: local.format.clone(),
        kernel: local.kernel.as_ref().map(|_| pool.join("image.kernel")),
        initrd: local.initrd.as_ref().map(|_| pool.join("image.initrd")),
        cmdline: local.cmdline.clone(),
    }
}
