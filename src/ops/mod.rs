//! One operation per command: load → plan → (apply) → report. Commands in `cli` are thin wrappers.

pub mod access;
pub mod context;
pub mod doctor;
pub mod down;
pub mod golden;
mod golden_check;
pub mod install;
pub mod lab;
pub mod plan;
pub mod render;
pub mod snapshot;
pub mod status;
pub mod suspend;
pub mod up;
pub mod verify;

#[cfg(test)]
mod tests;

pub use context::Ctx;

use crate::host;
use crate::model::{self, AccelChoice, Lab, LabSource};

/// Finds and validates a lab given as a built-in name or a path. Changes nothing.
pub fn load_lab(arg: &str) -> Result<Lab, model::ModelError> {
    let source = LabSource::find(arg)?;
    let known = image_names();
    let names: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut lab = model::load(&source, &names)?;
    lab.owner = crate::host::euid();
    Ok(lab)
}

/// The names a lab file's `image:` may give: the built-in recipes and the images imported by
/// name. An unreadable cache is not a reason to refuse a lab: it is reported, and `image:` then
/// knows only the recipes.
pub fn image_names() -> Vec<String> {
    let mut names = crate::image::recipe_names();
    match crate::image::list(&crate::paths::Dirs::discover()) {
        Ok(images) => names.extend(
            images
                .into_iter()
                .filter(|i| i.kind == "imported")
                .map(|i| i.name),
        ),
        Err(e) => tracing::warn!(
            "cannot list the image cache, so imported images are not known by name: {}",
            crate::error_chain(&e)
        ),
    }
    names
}

/// The accelerator for `lab`: the command-line override, else the lab file, else detection.
pub fn decide_accel(lab: &Lab, over: Option<AccelChoice>) -> host::AccelDecision {
    let choice = over.unwrap_or(lab.accel);
    let facts = if choice == AccelChoice::Auto {
        host::probe_accel()
    } else {
        host::AccelFacts {
            cpu_virt_flag: None,
            kvm_device: Ok(()),
        }
    };
    host::choose_accel(choice, &facts)
}

/// The lab name behind `arg`: a built-in lab or lab file is loaded for its name; otherwise a
/// DNS-safe `arg` is taken as the name of a lab whose file may be gone (`down`, `status`, `ssh`).
pub fn lab_name(arg: &str) -> Result<String, model::ModelError> {
    match load_lab(arg) {
        Ok(lab) => Ok(lab.name),
        Err(model::ModelError::NotFound { .. }) if model::is_dns_safe(arg) => Ok(arg.to_string()),
        Err(e) => Err(e),
    }
}
