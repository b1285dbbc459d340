//! `render`: print the XML `up` would give libvirt, a node's cloud-init seed, the DC/OS genconf
//! [pure; reads the lab's key when there is one, never makes one].

use crate::host::AccelDecision;
use crate::model::{Lab, NetKind};
use crate::paths::Dirs;
use crate::plan;
use crate::render::{self, RenderCtx, RenderError};

/// What to render.
#[derive(Debug, Clone)]
pub enum Target {
    Node(String),
    Network(NetKind),
    Pool,
    Volume(String),
}

pub fn render(
    lab: &Lab,
    accel: &AccelDecision,
    dirs: &Dirs,
    target: &Target,
) -> Result<String, RenderError> {
    let addresses = plan::plan_addresses(lab);
    let ctx = RenderCtx {
        accel: accel.accel,
        dirs: dirs.lab(&lab.name),
        image: crate::image::qemu_image(dirs, &lab.image),
    };
    match target {
        Target::Node(n) => render::domain_xml(lab, &addresses, n, &ctx),
        Target::Network(k) => render::network_xml(lab, &addresses, *k),
        Target::Pool => render::pool_xml(lab, &ctx.dirs, dirs.pool_owner()),
        Target::Volume(n) => {
            let node = lab
                .node(n)
                .ok_or_else(|| RenderError::NoSuchNode { node: n.clone() })?;
            render::disk_volume_xml(node, &ctx.image)
        }
    }
}

/// Which file of a node's NoCloud seed.
#[derive(Debug, Clone, Copy)]
pub enum SeedPart {
    UserData,
    MetaData,
    NetworkConfig,
    /// The fast first boot's script (`dcos-lab-firstboot.sh` on the seed).
    Firstboot,
}

/// A node's seed file as `up` would write it. The key authorised for root is `ssh_key` (a
/// public key file) or the lab's own key; a lab that was never brought up has none, and then
/// the user must say which key: rendering makes nothing on the host.
pub fn cloud_init(
    dirs: &Dirs,
    lab: &Lab,
    node: &str,
    part: SeedPart,
    ssh_key: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    use anyhow::Context;
    let key = match ssh_key {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the public key {}", p.display()))?,
        None => {
            let path = dirs.lab(&lab.name).ssh_key();
            if !path.exists() {
                return Err(crate::BadInput(format!(
                    "lab {} has no SSH key yet ({} is made by `dcos-lab up`)\n  fix: pass --ssh-key FILE with the public key to authorise for root",
                    lab.name,
                    path.display()
                ))
                .into());
            }
            crate::guest::LabKey::load(&path)?.public_openssh()
        }
    };
    let plan = plan::plan_addresses(lab);
    let seed = render::cloudinit::seed(lab, &plan, node, &key)?;
    Ok(match part {
        SeedPart::UserData => seed.user_data,
        SeedPart::MetaData => seed.meta_data,
        SeedPart::NetworkConfig => seed.network_config,
        SeedPart::Firstboot => seed.firstboot,
    })
}

/// The boot node's genconf/config.yaml, or genconf/ip-detect.
pub fn genconf(lab: &Lab, ip_detect: bool) -> Result<String, RenderError> {
    if ip_detect {
        Ok(render::genconf::ip_detect(lab))
    } else {
        render::genconf::config_yaml(lab, &plan::plan_addresses(lab))
    }
}
