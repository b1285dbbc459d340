//! One operation per command: load → plan → (apply) → report. Commands in `cli` are thin wrappers.

pub mod doctor;
pub mod plan;
pub mod render;

use crate::host;
use crate::model::{self, AccelChoice, Lab, LabSource};

/// Finds and validates a lab given as a built-in name or a path. Changes nothing.
pub fn load_lab(arg: &str) -> Result<Lab, model::ModelError> {
    let source = LabSource::find(arg)?;
    model::load(&source, &crate::image::recipe_names())
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
