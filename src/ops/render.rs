//! `render`: print the XML `up` would give libvirt [pure].

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
        image: crate::image::boot_image(dirs, &lab.image),
    };
    match target {
        Target::Node(n) => render::domain_xml(lab, &addresses, n, &ctx),
        Target::Network(k) => render::network_xml(lab, &addresses, *k),
        Target::Pool => render::pool_xml(lab, &ctx.dirs),
        Target::Volume(n) => {
            let node = lab
                .node(n)
                .ok_or_else(|| RenderError::NoSuchNode { node: n.clone() })?;
            render::disk_volume_xml(node, &ctx.image)
        }
    }
}
