//! `install`: DC/OS on a running lab, under the lab's lock, Ctrl-C stopping it at once
//! (the work is `lab::dcos`) [I/O].

use crate::model::Lab;
use crate::ops::Ctx;
use crate::ops::lab::{ctrl_c, dcos};

/// The `install` command: refuses a missing installer, takes the lab's lock, installs; Ctrl-C
/// stops it at once, saying what to do (`arg` is how the user named the lab).
pub async fn install_command(
    ctx: &Ctx,
    lab: &Lab,
    arg: &str,
    opts: &dcos::InstallOptions,
) -> anyhow::Result<dcos::InstallReport> {
    dcos::installer_path(lab)?;
    let _lock = ctx.lock(&lab.name)?;
    ctrl_c::until_ctrl_c(dcos::install(ctx, lab, opts), || async {
        crate::Interrupted(format!(
            "interrupted: `install` stopped by Ctrl-C (commands already started on the nodes run on)\n  fix: `dcos-lab install {arg}` resumes"
        ))
        .into()
    })
    .await
}
