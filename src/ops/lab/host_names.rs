//! The lab's nodes by name from the host (`<node>.<lab>` in the hosts file), kept by `up` and
//! `down` [I/O: the hosts file, `host::hosts_file`].

use std::net::IpAddr;

use crate::model::Lab;
use crate::ops::Ctx;
use crate::plan::AddressPlan;

/// Every node's name from the host and the address it stands for: the private IPv4, which the
/// host reaches (the address `ssh-config` gives).
pub fn names(lab: &Lab, addrs: &AddressPlan) -> Vec<(IpAddr, String)> {
    lab.nodes
        .iter()
        .filter_map(|n| {
            let ip = addrs.node(&n.name)?.private_ipv4()?;
            Some((IpAddr::V4(ip), format!("{}.{}", n.name, lab.name)))
        })
        .collect()
}

/// Adds (or brings up to date) lab `lab`'s names. A hosts file this user may not write is not
/// the lab's failure: it is said, with the fix, and the lab is reached by address or through
/// `ssh-config`. Returns the warning, if any.
pub fn add(ctx: &Ctx, lab: &Lab, addrs: &AddressPlan) -> Option<String> {
    set(ctx, &lab.name, &names(lab, addrs))
}

/// Makes lab `lab`'s names in the hosts file `names`, as [`add`] does.
pub fn set(ctx: &Ctx, lab: &str, names: &[(IpAddr, String)]) -> Option<String> {
    let path = ctx.hosts_file.as_ref()?;
    match crate::host::hosts_file::update(path, lab, names) {
        Ok(_) => None,
        Err(e) => {
            let said = format!("lab {lab}: the nodes have no names from this host ({e})");
            tracing::warn!("{said}");
            Some(said)
        }
    }
}

/// Removes lab `lab`'s names; says what it removed. A block that is there and cannot be
/// removed is a failure of `down` (it would be left behind), with the fix.
pub fn remove(ctx: &Ctx, lab: &str) -> anyhow::Result<Option<String>> {
    let Some(path) = ctx.hosts_file.as_ref() else {
        return Ok(None);
    };
    let changed = crate::host::hosts_file::update(path, lab, &[])?;
    Ok(changed.then(|| format!("names *.{lab} from {}", path.display())))
}

/// Makes a running node's `/etc/hosts` `content` (the lab's names, `cloudinit::etc_hosts`) when
/// it is not already: written beside and renamed over, so no reader sees half a file. Returns
/// whether it changed: a node added or removed since the node's first boot.
pub async fn sync_in_guest(shell: &dyn crate::guest::Shell, content: &str) -> anyhow::Result<bool> {
    const SYNC: &str = "t=$(mktemp /etc/.hosts.dcos-lab.XXXXXX) && cat > \"$t\" && \
        if cmp -s \"$t\" /etc/hosts; then rm -f \"$t\"; echo same; \
        else chmod 0644 \"$t\" && mv -f \"$t\" /etc/hosts && echo changed; fi";
    let out = shell.exec_with_input(SYNC, content.as_bytes()).await?;
    if !out.success() {
        anyhow::bail!(
            "cannot write the lab's names into /etc/hosts: {}",
            out.stderr_str().trim()
        );
    }
    Ok(out.stdout_str().trim() == "changed")
}
