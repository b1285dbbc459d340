//! What `up` and `up --from` both make of a lab: the base image checked or built, the nodes'
//! NoCloud seeds; and what both report [I/O: files, image tools].

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::host::AccelDecision;
use crate::model::{ImageRef, Lab};
use crate::names::LabDirs;
use crate::ops::lab::state::NodeState;
use crate::paths::Dirs;
use crate::progress::Progress;
use crate::render;

/// What `up` and `up --from` report.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub lab: String,
    pub accel: AccelDecision,
    /// Actions taken (empty when the lab was already up).
    pub actions: Vec<String>,
    pub nodes: Vec<NodeState>,
    pub seconds: f64,
    /// What did not keep the lab from coming up but the user should know (the nodes' names
    /// that could not be written, with the fix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Writes a node's NoCloud seed as an ISO 9660 image labelled `cidata` (genisoimage), atomically.
pub fn write_seed(
    lab_dirs: &LabDirs,
    node: &str,
    seed: &render::cloudinit::Seed,
) -> anyhow::Result<()> {
    let work = lab_dirs.path().join(format!(".seed-{node}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let files = [
        ("user-data", &seed.user_data),
        ("meta-data", &seed.meta_data),
        ("network-config", &seed.network_config),
        (render::cloudinit::FIRSTBOOT_FILE, &seed.firstboot),
    ];
    for (name, text) in files {
        std::fs::write(work.join(name), text)
            .with_context(|| format!("cannot write the {name} of {node}"))?;
    }
    let dest = lab_dirs.seed(node);
    let tmp = dest.with_extension("img.tmp");
    let out = std::process::Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&tmp)
        .args(files.iter().map(|(name, _)| work.join(name)))
        .output()
        .context("cannot run genisoimage (scripts/setup-host.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "genisoimage failed for the seed of {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// A lab file's `image:` given by path is a file from outside: checked before libvirt or
/// qemu-img opens it (`image::check_outside_image`). Images in the cache were checked when
/// they were built or imported.
pub fn check_image_file(lab: &Lab, img: &crate::render::BootImage) -> anyhow::Result<()> {
    if let ImageRef::File(p) = &lab.image {
        crate::image::check_outside_image(p, Some(&img.format)).map_err(|e| {
            crate::BadInput(format!("{}: image: {}", lab.source, crate::error_chain(&e)))
        })?;
    }
    Ok(())
}

/// Makes sure the image exists: builds a missing built-in recipe (saying so); a missing imported
/// image or file is an error that says what to do.
pub async fn ensure_image(dirs: &Dirs, lab: &Lab, progress: &Progress) -> anyhow::Result<()> {
    let img = crate::image::boot_image(dirs, &lab.image);
    if img.disk.is_file() {
        return check_image_file(lab, &img);
    }
    match &lab.image {
        ImageRef::Recipe(name) if crate::image::recipe_names().contains(name) => {
            let line = Arc::new(progress.spinner(&format!("image {name}")));
            line.step("not in the cache: building it (about a minute)");
            let d = dirs.clone();
            let n = name.clone();
            let l2 = line.clone();
            let built =
                tokio::task::spawn_blocking(move || crate::image::build(&d, &n, &|s| l2.step(s)))
                    .await?
                    .with_context(|| format!("cannot build image {name}"))?;
            line.done(&format!("built in {:.0} s", built.seconds));
            Ok(())
        }
        ImageRef::Recipe(name) => Err(crate::BadInput(format!(
            "{}: image \"{name}\" is not in the cache {}\n  fix: `dcos-lab image import FILE --name {name}`",
            lab.source,
            dirs.images().display()
        ))
        .into()),
        ImageRef::File(p) => Err(crate::BadInput(format!(
            "{}: image: the file {} does not exist\n  fix: correct `image:` in the lab file",
            lab.source,
            p.display()
        ))
        .into()),
    }
}
