//! A made lab's node indices (which fix its nodes' MACs and addresses), read from its private
//! network, so that a command working from the lab file addresses the nodes as they were made:
//! an agent added anywhere in the file, or one removed, moves no other node [I/O: libvirt].

use crate::driver::blocking;
use crate::model::{Lab, NetKind};
use crate::ops::Ctx;
use crate::plan::NetEntry;

/// `lab` with the indices its made nodes hold (the lab file's order for a lab not made yet).
pub async fn as_made(ctx: &Ctx, lab: &Lab) -> anyhow::Result<Lab> {
    let net = crate::names::network_name(&lab.name, NetKind::Private);
    let entries = blocking(ctx.hv(), move |h| match h.network_entries(&net) {
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        r => r,
    })
    .await?;
    with_entries(lab, &entries)
}

/// `lab` with the indices the entries of its private network hold.
pub fn with_entries(lab: &Lab, private: &[NetEntry]) -> anyhow::Result<Lab> {
    lab.keep_indices(&crate::plan::kept_indices(private))
        .map_err(|why| {
            crate::BadInput(format!(
                "{}: lab {} as it was made cannot take the nodes of the lab file: {why}\n  fix: give networks.private.cidr more room, or `dcos-lab down {}` and `up`",
                lab.source, lab.name, lab.name
            ))
            .into()
        })
}
