//! Fast tests of the operations against the in-memory hypervisor (`driver::fake`): convergence,
//! drift, ordering, ownership, all-or-nothing, retries and every kill point, in milliseconds.
//! The real-libvirt system tests (tests/system.rs, tests/reliability.rs) check the same
//! behaviour on real guests; these add speed and reach every step, they replace nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::driver::fake::{FakeGuests, FakeHypervisor};
use crate::driver::{Hv, Hypervisor};
use crate::model::{AccelChoice, Lab};
use crate::names::ObjState;
use crate::ops::Ctx;
use crate::ops::lab::state::{self as lab_state, LabState};
use crate::paths::Dirs;

/// One test's world: a fake host, its guests, state and cache directories of its own.
struct World {
    _dir: tempfile::TempDir,
    hv: Arc<FakeHypervisor>,
    guests: Arc<FakeGuests>,
    ctx: Ctx,
    rt: tokio::runtime::Runtime,
}

const LAB: &str = "\
name: NAME
image: debian-12
networks:
  private:
    mode: isolated
  public:
    mode: nat
nodes:
  - name: boot
    role: boot
    memory: MEM
    vcpus: 1
    disk: 2G
  - name: master
    role: master
    memory: 256M
    vcpus: 1
    disk: 2G
  - name: public
    role: agent-public
    memory: 256M
    vcpus: 1
    disk: 2G
    networks: [private, public]
";

fn lab_with(name: &str, boot_memory: &str) -> Lab {
    let text = LAB.replace("NAME", name).replace("MEM", boot_memory);
    crate::model::parse(&text, &format!("{name}.yaml"), None, &["debian-12"]).expect("valid lab")
}

fn lab(name: &str) -> Lab {
    lab_with(name, "256M")
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let dirs = Dirs {
        state: dir.path().join("state"),
        cache: dir.path().join("cache"),
        shared: None,
    };
    let hv = FakeHypervisor::new();
    let guests = FakeGuests::new(hv.clone());
    let h: Hv = hv.clone();
    let mut ctx = Ctx::new(h, guests.clone(), dirs, true);
    // The labs here are root's (as `model::parse` records them), whoever runs the tests.
    ctx.owner = 0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    World {
        _dir: dir,
        hv,
        guests,
        ctx,
        rt,
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Lets go of any call a dead host still holds.
        self.hv.revive();
    }
}

impl World {
    /// The image the lab boots from, as a file in this world's cache.
    fn with_image(self, lab: &Lab) -> World {
        let img = crate::image::boot_image(&self.ctx.dirs, &lab.image);
        std::fs::create_dir_all(img.disk.parent().expect("dir")).expect("image dir");
        std::fs::write(&img.disk, b"QFI\xfb fake image").expect("image");
        for f in [&img.kernel, &img.initrd].into_iter().flatten() {
            std::fs::write(f, b"").expect("kernel");
        }
        self
    }

    /// `up` waiting up to 30 s for a node: ample for the fake's guests, which answer at once,
    /// even on a host the system tier loads at the same time.
    fn up(&self, lab: &Lab) -> anyhow::Result<crate::ops::lab::making::UpReport> {
        self.up_waiting(lab, Duration::from_secs(30))
    }

    fn up_waiting(
        &self,
        lab: &Lab,
        wait: Duration,
    ) -> anyhow::Result<crate::ops::lab::making::UpReport> {
        let accel = crate::ops::decide_accel(lab, Some(AccelChoice::Tcg));
        let opts = crate::ops::up::UpOptions {
            wait,
            install: None,
            nodes: Vec::new(),
        };
        self.run(crate::ops::up::up(&self.ctx, lab, accel, &opts))
    }

    /// Runs an operation as a process would: once the fake host dies (`die_after`), its calls
    /// get no answer and the operation is dropped there, as a killed process is, without running
    /// its error paths.
    fn run<T>(
        &self,
        op: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let mut dead = self.hv.watch_dead();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let r = rt.block_on(async {
            tokio::select! {
                biased;
                _ = dead.wait_for(|d| *d) => Err(anyhow::anyhow!("killed: the fake host died")),
                r = op => r,
            }
        });
        // Calls held by the dead host stay held until `revive()`; their answers go nowhere.
        rt.shutdown_background();
        r
    }

    fn down(&self, lab: &str) -> anyhow::Result<crate::ops::lab::teardown::DownReport> {
        self.run(crate::ops::lab::teardown::down(&self.ctx, lab))
    }

    fn snapshot(
        &self,
        lab: &str,
        name: &str,
    ) -> anyhow::Result<crate::ops::lab::snapshots::SnapshotReport> {
        self.run(crate::ops::lab::snapshots::snapshot(&self.ctx, lab, name))
    }

    fn revert(
        &self,
        lab: &str,
        name: Option<&str>,
    ) -> anyhow::Result<crate::ops::lab::snapshots::RevertReport> {
        self.run(crate::ops::lab::snapshots::revert(
            &self.ctx,
            lab,
            name,
            Duration::from_secs(30),
        ))
    }

    fn state(&self, lab: &str) -> LabState {
        self.rt
            .block_on(lab_state::read(&self.ctx, lab))
            .expect("read")
    }

    /// `node_states` as user `owner` sees them.
    fn node_states_of(&mut self, owner: u32, lab: &str) -> Vec<(String, ObjState)> {
        let was = std::mem::replace(&mut self.ctx.owner, owner);
        let states = self.node_states(lab);
        self.ctx.owner = was;
        states
    }

    fn node_states(&self, lab: &str) -> Vec<(String, ObjState)> {
        self.state(lab)
            .nodes
            .into_iter()
            .map(|n| (n.name, n.state))
            .collect()
    }

    fn unfinished_revert(&self, lab: &str) -> Option<String> {
        crate::ops::lab::snapshots::unfinished_revert(&self.ctx.dirs.lab(lab)).expect("record")
    }
}

fn all(state: ObjState) -> Vec<(String, ObjState)> {
    ["boot", "master", "public"]
        .iter()
        .map(|n| (n.to_string(), state))
        .collect()
}

fn bad_input(e: &anyhow::Error) -> bool {
    crate::failure::kind_of(e) == crate::failure::Kind::BadInput
}

// ---- the fake refuses what libvirt refuses ----

#[test]
fn the_fake_refuses_what_libvirt_refuses() {
    let w = world();
    let l = lab("fk-fake");
    let w = w.with_image(&l);
    w.up(&l).expect("up");
    let hv = &w.hv;
    let master = "dcos-lab-fk-fake-master";
    // A snapshot name twice, a revert to a snapshot that is not there.
    hv.create_snapshot(master, "s1", "").expect("first");
    assert!(hv.create_snapshot(master, "s1", "").is_err(), "taken twice");
    assert!(matches!(
        hv.revert_snapshot(master, "nope", false),
        Err(crate::driver::DriverError::NoSnapshot { .. })
    ));
    // A stopped domain cannot be paused or snapshotted with memory.
    hv.stop_domain(master).expect("stop");
    assert!(hv.suspend_domain(master).is_err(), "pause a stopped domain");
    assert!(
        hv.create_snapshot(master, "s2", "").is_err(),
        "memory of nothing"
    );
    // A network cannot stop under a running domain; a bridge cannot be taken twice.
    assert!(hv.remove_network("dcos-lab-fk-fake-private").is_err());
    let bridge = crate::plan::plan_addresses(&l)
        .network(crate::model::NetKind::Private)
        .expect("private")
        .bridge
        .clone();
    let stolen = format!("<network><name>theirs</name><bridge name='{bridge}'/></network>");
    assert!(hv.define_network(&stolen).is_err(), "bridge in use");
    // Missing objects are "not found" to callers, as libvirt's are.
    assert!(
        hv.snapshots("dcos-lab-nope")
            .expect_err("missing")
            .is_not_found()
    );
    // A domain whose disk is gone does not start.
    let disk = w.ctx.dirs.lab("fk-fake").disk("master");
    std::fs::remove_file(&disk).expect("rm disk");
    assert!(hv.start_domain(master).is_err(), "start without its disk");
}

// ---- up ----

#[test]
fn up_creates_the_whole_lab_and_every_node_runs() {
    let l = lab("fk-up");
    let w = world().with_image(&l);
    let r = w.up(&l).expect("up");
    assert_eq!(w.node_states("fk-up"), all(ObjState::Active));
    let changes = w.hv.changes();
    // The pool and networks before any domain is defined, every domain defined before any starts.
    let pos = |what: &str| {
        changes
            .iter()
            .position(|c| c.starts_with(what))
            .unwrap_or_else(|| panic!("{what} in {changes:?}"))
    };
    assert!(pos("define storage pool") < pos("define domain"));
    assert!(pos("start network dcos-lab-fk-up-private") < pos("start domain"));
    let last_define = changes
        .iter()
        .rposition(|c| c.starts_with("define domain"))
        .expect("defines");
    assert!(last_define < pos("start domain"), "{changes:?}");
    assert_eq!(
        r.actions
            .iter()
            .filter(|a| a.starts_with("start domain"))
            .count(),
        3,
        "{:?}",
        r.actions
    );
    // Seeds are real ISO files in the pool, disks are volumes.
    let dirs = w.ctx.dirs.lab("fk-up");
    for n in ["boot", "master", "public"] {
        assert!(dirs.seed(n).is_file(), "seed of {n}");
        assert!(dirs.disk(n).is_file(), "disk of {n}");
    }
}

#[test]
fn a_second_up_changes_nothing() {
    let l = lab("fk-again");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let before = w.hv.changes().len();
    let r = w.up(&l).expect("again");
    assert!(r.actions.is_empty(), "{:?}", r.actions);
    assert_eq!(w.hv.changes().len(), before, "{:?}", w.hv.changes());
}

#[test]
fn up_starts_only_the_stopped_node_and_resumes_a_paused_one() {
    let l = lab("fk-conv");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.stop_domain("dcos-lab-fk-conv-master").expect("stop");
    w.hv.suspend_domain("dcos-lab-fk-conv-public")
        .expect("pause");
    let before = w.hv.changes().len();
    let r = w.up(&l).expect("converge");
    // The paused node is "started" too: the driver resumes it.
    assert_eq!(
        r.actions,
        [
            "start domain dcos-lab-fk-conv-master",
            "start domain dcos-lab-fk-conv-public"
        ]
    );
    let mut made = w.hv.changes()[before..].to_vec();
    made.sort();
    assert_eq!(
        made,
        [
            "resume domain dcos-lab-fk-conv-public",
            "start domain dcos-lab-fk-conv-master"
        ]
    );
    assert_eq!(w.node_states("fk-conv"), all(ObjState::Active));
}

/// A pause a killed command left under way in libvirtd (the node still reads as running when the
/// next `up` starts, and is paused a moment later): `up` waits for it before it looks, and resumes
/// the node instead of waiting for a paused guest to answer.
#[test]
fn up_waits_for_a_pause_under_way_and_resumes_the_node() {
    let l = lab("fk-inflight");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.pause_under_way("dcos-lab-fk-inflight-master");
    let before = w.hv.changes().len();
    let r = w.up(&l).expect("converge");
    assert_eq!(r.actions, ["start domain dcos-lab-fk-inflight-master"]);
    assert_eq!(
        w.hv.changes()[before..],
        ["resume domain dcos-lab-fk-inflight-master"]
    );
    assert_eq!(w.node_states("fk-inflight"), all(ObjState::Active));
}

#[test]
fn a_changed_lab_file_is_refused_naming_what_differs_and_nothing_changes() {
    let l = lab("fk-drift");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let before = w.hv.changes();
    let e = w.up(&lab_with("fk-drift", "320M")).expect_err("drift");
    assert!(bad_input(&e), "{e:#}");
    match e.downcast_ref() {
        Some(crate::ops::up::UpError::Drifted { differences, .. }) => assert_eq!(
            differences.len(),
            1,
            "only the boot node changed: {differences:?}"
        ),
        _ => panic!("not a drift: {e:#}"),
    }
    let msg = format!("{e:#}");
    assert!(
        msg.contains("node boot: its definition changed") && msg.contains("dcos-lab down"),
        "{msg}"
    );
    // A node the file no longer has is named too.
    let fewer = crate::model::parse(
        &LAB.replace("NAME", "fk-drift")
            .replace("MEM", "256M")
            .replace(
                "  - name: public\n    role: agent-public\n    memory: 256M\n    vcpus: 1\n    disk: 2G\n    networks: [private, public]\n",
                "",
            ),
        "fk-drift.yaml",
        None,
        &["debian-12"],
    )
    .expect("valid");
    // A node the file no longer has is named, with `down --node` as the fix for an agent.
    let e = w.up(&fewer).expect_err("a node less");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        matches!(
            e.downcast_ref(),
            Some(crate::ops::up::UpError::Removed { nodes, .. })
                if nodes == &[("public".to_string(), "agent-public".to_string())]
        ),
        "{e:#}"
    );
    assert!(
        format!("{e:#}").contains("`dcos-lab down fk-drift --node public`"),
        "{e:#}"
    );
    // A master gone from the file goes only with the lab.
    let no_master = crate::model::parse(
        &LAB.replace("NAME", "fk-drift")
            .replace("MEM", "256M")
            .replace(
                "name: master\n    role: master",
                "name: other\n    role: master",
            ),
        "fk-drift.yaml",
        None,
        &["debian-12"],
    )
    .expect("valid");
    let e = w.up(&no_master).expect_err("the master gone");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("master (master)")
            && msg.contains("fixed for the lab's life")
            && !msg.contains("--node"),
        "{msg}"
    );
    assert_eq!(w.hv.changes(), before, "a refused up changed the host");
}

#[test]
fn up_refuses_an_address_range_another_network_has_before_creating_anything() {
    let l = lab("fk-cidr");
    let w = world().with_image(&l);
    // Someone else's network (no metadata) on the lab's private range.
    let cidr = l.network(crate::model::NetKind::Private).cidr;
    let ip = cidr.nth(1).expect("ip");
    w.hv.define_network(&format!(
        "<network><name>theirs</name><bridge name='theirs0'/><ip address='{ip}' prefix='{}'/></network>",
        cidr.prefix()
    ))
    .expect("theirs");
    let before = w.hv.changes();
    let e = w.up(&l).expect_err("collision");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        matches!(
            e.downcast_ref(),
            Some(crate::ops::up::UpError::Collides {
                kind: crate::model::NetKind::Private,
                ..
            })
        ),
        "{e:#}"
    );
    assert!(
        format!("{e:#}").contains("collides with libvirt network theirs"),
        "{e:#}"
    );
    assert_eq!(w.hv.changes(), before);
    assert_eq!(w.hv.objects(), ["network theirs"]);
}

#[test]
fn a_node_that_never_answers_fails_up_naming_it_and_the_others_are_left_running() {
    let l = lab("fk-mute");
    let w = world().with_image(&l);
    w.guests.make_unreachable("master");
    let e = w
        .up_waiting(&l, Duration::from_millis(300))
        .expect_err("master never answers");
    assert!(
        e.chain().any(|c| matches!(
            c.downcast_ref(),
            Some(crate::ops::up::UpError::NotReachable { node, .. }) if node == "master"
        )),
        "{e:#}"
    );
    let msg = format!("{e:#}");
    assert!(msg.contains("node master is not reachable"), "{msg}");
    assert!(msg.contains("left running for inspection"), "{msg}");
    assert!(!bad_input(&e));
    assert_eq!(w.node_states("fk-mute"), all(ObjState::Active));
}

/// `up` killed after each of its steps; the next `up` takes over and ends with the same lab.
#[test]
fn up_killed_after_any_step_is_finished_by_the_next_up() {
    let l = lab("fk-kill");
    let reference = world().with_image(&l);
    reference.up(&l).expect("up");
    let steps = reference.hv.changes().len();
    assert!(steps >= 12, "{:?}", reference.hv.changes());
    for n in 0..steps {
        let w = world().with_image(&l);
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.up(&l).is_err(), "up killed after step {n} fails");
        w.hv.revive();
        w.up(&l)
            .unwrap_or_else(|e| panic!("up after a kill at step {n}: {e:#}"));
        assert_eq!(w.node_states("fk-kill"), all(ObjState::Active), "step {n}");
        assert_eq!(w.hv.objects(), reference.hv.objects(), "step {n}");
        let again = w.up(&l).expect("third up");
        assert!(again.actions.is_empty(), "step {n}: {:?}", again.actions);
    }
}

// ---- down ----

#[test]
fn down_removes_domains_first_then_networks_and_pool_and_leaves_nothing() {
    let l = lab("fk-down");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let before = w.hv.changes().len();
    let r = w.down("fk-down").expect("down");
    assert!(w.hv.objects().is_empty(), "{:?}", w.hv.objects());
    assert!(!w.ctx.dirs.lab("fk-down").path().exists());
    let changes = &w.hv.changes()[before..];
    let last_domain = changes
        .iter()
        .rposition(|c| c.contains("domain"))
        .expect("domains");
    let first_other = changes
        .iter()
        .position(|c| c.contains("network") || c.contains("pool") || c.contains("volume"))
        .expect("others");
    assert!(last_domain < first_other, "{changes:?}");
    assert!(
        r.removed.iter().any(|x| x.starts_with("storage pool")),
        "{:?}",
        r.removed
    );
    let again = w.down("fk-down").expect("again");
    assert!(again.removed.is_empty(), "{:?}", again.removed);
}

#[test]
fn down_touches_only_what_the_lab_owns() {
    let a = lab("fk-own-a");
    let b = lab("fk-own-b");
    let w = world().with_image(&a);
    w.up(&a).expect("up a");
    w.up(&b).expect("up b");
    // Look-alikes: named like the lab's objects, without our metadata.
    w.hv.define_domain(
        "<domain type='qemu'><name>dcos-lab-fk-own-a-extra</name><devices/></domain>",
    )
    .expect("look-alike domain");
    w.hv.define_network(
        "<network><name>dcos-lab-fk-own-a-extra</name><bridge name='lookalike0'/></network>",
    )
    .expect("look-alike network");
    w.down("fk-own-a").expect("down a");
    let left = w.hv.objects();
    assert!(
        left.contains(&"domain dcos-lab-fk-own-a-extra".to_string()),
        "{left:?}"
    );
    assert!(
        left.contains(&"network dcos-lab-fk-own-a-extra".to_string()),
        "{left:?}"
    );
    assert_eq!(w.node_states("fk-own-b"), all(ObjState::Active));
    assert!(
        !left
            .iter()
            .any(|o| o.contains("fk-own-a-") && !o.ends_with("-extra")),
        "{left:?}"
    );
    // down --all removes lab b and leaves the look-alikes.
    let all_down =
        w.rt.block_on(crate::ops::down::down_labs(&w.ctx, None))
            .expect("down --all");
    assert!(all_down.iter().any(|r| r.lab == "fk-own-b"));
    assert_eq!(
        w.hv.objects(),
        [
            "domain dcos-lab-fk-own-a-extra",
            "network dcos-lab-fk-own-a-extra"
        ]
    );
}

/// `down` killed after each of its steps; the next `down` leaves nothing.
#[test]
fn down_killed_after_any_step_is_finished_by_the_next_down() {
    let l = lab("fk-kdown");
    let probe = world().with_image(&l);
    probe.up(&l).expect("up");
    let before = probe.hv.changes().len();
    probe.down("fk-kdown").expect("down");
    let steps = probe.hv.changes().len() - before;
    assert!(steps >= 10, "{:?}", probe.hv.changes());
    for n in 0..steps {
        let w = world().with_image(&l);
        w.up(&l).expect("up");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.down("fk-kdown").is_err(), "down killed after step {n}");
        w.hv.revive();
        w.down("fk-kdown")
            .unwrap_or_else(|e| panic!("down after a kill at step {n}: {e:#}"));
        assert!(w.hv.objects().is_empty(), "step {n}: {:?}", w.hv.objects());
        assert!(!w.ctx.dirs.lab("fk-kdown").path().exists(), "step {n}");
    }
}

// ---- snapshot ----

#[test]
fn a_snapshot_that_fails_on_one_node_is_taken_on_none_and_every_node_runs_on() {
    let l = lab("fk-snap");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.fail("snapshot domain dcos-lab-fk-snap-public", 1);
    let e = w.snapshot("fk-snap", "s1").expect_err("fails on public");
    assert!(
        format!("{e:#}").contains("the lab is as it was (no node holds s1)"),
        "{e:#}"
    );
    for n in ["boot", "master", "public"] {
        assert!(
            w.hv.snapshot_names(&format!("dcos-lab-fk-snap-{n}"))
                .is_empty(),
            "{n} holds a partial snapshot"
        );
    }
    assert_eq!(w.node_states("fk-snap"), all(ObjState::Active));
    // Once the fault is gone the same name works.
    w.snapshot("fk-snap", "s1").expect("snapshot");
    assert_eq!(w.state("fk-snap").snapshots, ["s1"]);
}

#[test]
fn a_snapshot_that_cannot_pause_a_node_changes_nothing_and_resumes_the_others() {
    let l = lab("fk-pause");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.fail("pause domain dcos-lab-fk-pause-master", 1);
    w.snapshot("fk-pause", "s1").expect_err("cannot pause");
    assert_eq!(w.node_states("fk-pause"), all(ObjState::Active));
    assert!(w.state("fk-pause").snapshots.is_empty());
}

#[test]
fn snapshot_refuses_a_taken_name_a_stopped_node_and_a_bad_name() {
    let l = lab("fk-snapno");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.snapshot("fk-snapno", "s1").expect("s1");
    let e = w.snapshot("fk-snapno", "s1").expect_err("taken");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("already has a snapshot s1"),
        "{e:#}"
    );
    let e = w.snapshot("fk-snapno", "a b").expect_err("bad name");
    assert!(bad_input(&e), "{e:#}");
    w.hv.stop_domain("dcos-lab-fk-snapno-master").expect("stop");
    let e = w.snapshot("fk-snapno", "s2").expect_err("stopped");
    assert!(format!("{e:#}").contains("master"), "{e:#}");
    assert_eq!(w.state("fk-snapno").snapshots, ["s1"]);
}

/// `snapshot` killed after each step: `up` brings every node back running, and the lab takes a
/// snapshot again (a partial one is listed as incomplete and can be removed).
#[test]
fn snapshot_killed_after_any_step_leaves_a_lab_that_up_resumes() {
    let l = lab("fk-ksnap");
    let probe = world().with_image(&l);
    probe.up(&l).expect("up");
    let before = probe.hv.changes().len();
    probe.snapshot("fk-ksnap", "s1").expect("snapshot");
    let steps = probe.hv.changes().len() - before;
    assert_eq!(steps, 9, "pause, capture, resume of 3 nodes");
    for n in 0..steps {
        let w = world().with_image(&l);
        w.up(&l).expect("up");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.snapshot("fk-ksnap", "s1").is_err(), "step {n}");
        w.hv.revive();
        w.up(&l).expect("up resumes");
        assert_eq!(w.node_states("fk-ksnap"), all(ObjState::Active), "step {n}");
        let listed =
            w.rt.block_on(crate::ops::lab::snapshots::list(&w.ctx, "fk-ksnap"))
                .expect("list");
        if listed.iter().any(|s| s.name == "s1" && !s.complete) {
            w.rt.block_on(crate::ops::lab::snapshots::remove(&w.ctx, "fk-ksnap", "s1"))
                .expect("rm partial");
        }
        if w.state("fk-ksnap").snapshots.is_empty() {
            w.snapshot("fk-ksnap", "s1").expect("snapshot again");
        }
        w.revert("fk-ksnap", Some("s1")).expect("revert");
    }
}

// ---- revert ----

#[test]
fn revert_puts_every_node_back_running_and_sets_the_boot_clock_first() {
    let l = lab("fk-rev");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.snapshot("fk-rev", "s1").expect("snapshot");
    let r = w.revert("fk-rev", None).expect("revert to the newest");
    assert_eq!(r.snapshot, "s1");
    assert_eq!(w.node_states("fk-rev"), all(ObjState::Active));
    assert_eq!(r.clock_offsets.len(), 3);
    assert!(w.unfinished_revert("fk-rev").is_none());
    // Every node's clock was set; the followers asked chrony for a burst, after the boot node.
    let ran = w.guests.ran.lock().expect("ran").clone();
    let at = |node: &str| {
        ran.iter()
            .position(|(n, _, _)| n == node)
            .unwrap_or_else(|| panic!("{node} in {ran:?}"))
    };
    assert!(
        at("boot") < at("master") && at("boot") < at("public"),
        "{ran:?}"
    );
    for node in ["boot", "master", "public"] {
        let cmds: Vec<&crate::driver::fake::Ran> =
            ran.iter().filter(|(n, _, _)| n == node).collect();
        // The boot node: its clock on its own (the others wait for it), then its random
        // state. A follower: its clock, chrony's burst and its random state in one command.
        let (clock, reseed) = if node == "boot" {
            assert_eq!(cmds.len(), 2, "{node}: {cmds:?}");
            assert!(!cmds[0].1.contains("chronyc"), "{}", cmds[0].1);
            (cmds[0], cmds[1])
        } else {
            assert_eq!(cmds.len(), 1, "{node}: {cmds:?}");
            assert!(cmds[0].1.contains("chronyc -a burst"), "{}", cmds[0].1);
            (cmds[0], cmds[0])
        };
        assert!(clock.1.contains("date -u -s"), "{node}: {}", clock.1);
        // The kernel gets fresh host entropy on its input, not on the command line.
        assert!(reseed.1.contains("python3"), "{node}: {}", reseed.1);
        let hex = std::str::from_utf8(&reseed.2)
            .expect("text")
            .lines()
            .last()
            .expect("hex line")
            .to_string();
        assert_eq!(
            hex.len(),
            2 * crate::ops::lab::clocks::RESEED_BYTES,
            "{node}"
        );
        assert!(!reseed.1.contains(&hex));
    }
    // A second revert of the same snapshot sends every node other bytes.
    let before = ran.len();
    w.revert("fk-rev", Some("s1")).expect("again");
    let again = w.guests.ran.lock().expect("ran").clone();
    let seeds = |list: &[crate::driver::fake::Ran]| -> Vec<Vec<u8>> {
        list.iter()
            .filter(|(_, c, _)| c.contains("python3"))
            .map(|(_, _, i)| {
                String::from_utf8_lossy(i)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec()
            })
            .collect()
    };
    let (first, second) = (seeds(&ran), seeds(&again[before..]));
    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 3);
    for s in &second {
        assert!(!first.contains(s), "a reseed repeated");
    }
}

#[test]
fn revert_tries_a_failing_node_again() {
    let l = lab("fk-retry");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.snapshot("fk-retry", "s1").expect("snapshot");
    w.hv.fail("revert domain dcos-lab-fk-retry-master", 2);
    w.revert("fk-retry", Some("s1")).expect("third try works");
    assert_eq!(w.node_states("fk-retry"), all(ObjState::Active));
    assert!(w.unfinished_revert("fk-retry").is_none());
}

#[test]
fn a_revert_that_keeps_failing_is_recorded_leaves_every_node_paused_and_up_finishes_it() {
    let l = lab("fk-stuck");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.snapshot("fk-stuck", "s1").expect("snapshot");
    w.hv.fail("revert domain dcos-lab-fk-stuck-public", 3);
    let e = w
        .revert("fk-stuck", Some("s1"))
        .expect_err("three failures");
    assert!(
        matches!(
            e.downcast_ref(),
            Some(crate::ops::lab::snapshots::RevertError::Unfinished { domain, snapshot, .. })
                if domain == "dcos-lab-fk-stuck-public" && snapshot == "s1"
        ),
        "{e:#}"
    );
    assert!(!bad_input(&e));
    let msg = format!("{e:#}");
    assert!(msg.contains("every node is left paused"), "{msg}");
    assert!(msg.contains("recorded as unfinished"), "{msg}");
    assert_eq!(w.node_states("fk-stuck"), all(ObjState::Paused));
    assert_eq!(w.unfinished_revert("fk-stuck").as_deref(), Some("s1"));
    // status names it; a snapshot now is refused.
    let st =
        w.rt.block_on(crate::ops::status::status(&w.ctx, Some("fk-stuck")))
            .expect("status");
    assert_eq!(st[0].unfinished_revert.as_deref(), Some("s1"));
    let e = w.snapshot("fk-stuck", "s2").expect_err("refused");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("half way through a revert"),
        "{e:#}"
    );
    // Neither suspended nor resumed: its paused nodes would run on half reverted.
    let before = w.hv.changes();
    for e in [
        w.suspend("fk-stuck").expect_err("suspend refused"),
        w.resume("fk-stuck").expect_err("resume refused"),
    ] {
        assert!(
            bad_input(&e) && format!("{e:#}").contains("half way through a revert"),
            "{e:#}"
        );
    }
    assert_eq!(w.hv.changes(), before);
    assert_eq!(w.node_states("fk-stuck"), all(ObjState::Paused));
    // up finishes the revert.
    let r = w.up(&l).expect("up finishes");
    assert!(
        r.actions
            .iter()
            .any(|a| a == "finish the interrupted revert to s1"),
        "{:?}",
        r.actions
    );
    assert_eq!(w.node_states("fk-stuck"), all(ObjState::Active));
    assert!(w.unfinished_revert("fk-stuck").is_none());
}

#[test]
fn revert_refuses_before_any_change_what_it_cannot_put_back() {
    let l = lab("fk-norev");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let e = w.revert("fk-norev", None).expect_err("no snapshot yet");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("has no snapshot"),
        "{e:#}"
    );
    w.snapshot("fk-norev", "s1").expect("snapshot");
    let e = w.revert("fk-norev", Some("s9")).expect_err("no such");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        matches!(
            e.downcast_ref(),
            Some(crate::ops::lab::snapshots::RevertError::NoSuchSnapshot { name, .. }) if name == "s9"
        ),
        "{e:#}"
    );
    // A snapshot on one node only.
    w.hv.create_snapshot("dcos-lab-fk-norev-master", "lonely", "")
        .expect("partial");
    let e = w
        .revert("fk-norev", Some("lonely"))
        .expect_err("incomplete");
    assert!(format!("{e:#}").contains("not on every node"), "{e:#}");
    // A disk that lost the snapshot's memory.
    w.hv.lose_memory("dcos-lab-fk-norev-public", "s1");
    let before = w.hv.changes();
    let e = w.revert("fk-norev", Some("s1")).expect_err("no memory");
    assert!(format!("{e:#}").contains("has no memory state"), "{e:#}");
    assert_eq!(w.hv.changes(), before, "a refused revert changed the host");
    assert!(w.unfinished_revert("fk-norev").is_none());
}

/// `revert` killed after each step: the next `up` finishes it, every node running from the
/// snapshot, the record gone.
#[test]
fn revert_killed_after_any_step_is_finished_by_the_next_up() {
    let l = lab("fk-krev");
    let probe = world().with_image(&l);
    probe.up(&l).expect("up");
    probe.snapshot("fk-krev", "s1").expect("snapshot");
    let before = probe.hv.changes().len();
    probe.revert("fk-krev", Some("s1")).expect("revert");
    let steps = probe.hv.changes().len() - before;
    assert_eq!(steps, 6, "{:?}", &probe.hv.changes()[before..]);
    for n in 0..steps {
        let w = world().with_image(&l);
        w.up(&l).expect("up");
        w.snapshot("fk-krev", "s1").expect("snapshot");
        w.hv.die_after(u32::try_from(n).expect("small"));
        let e = w.revert("fk-krev", Some("s1")).expect_err("killed");
        assert!(format!("{e:#}").starts_with("killed"), "step {n}: {e:#}");
        w.hv.revive();
        assert_eq!(
            w.unfinished_revert("fk-krev").as_deref(),
            Some("s1"),
            "step {n}"
        );
        let mark = w.hv.changes().len();
        w.up(&l).expect("up finishes the revert");
        let redone = w.hv.changes()[mark..]
            .iter()
            .filter(|c| c.starts_with("revert domain"))
            .count();
        assert_eq!(
            redone, 3,
            "step {n}: every node goes forward to the snapshot"
        );
        assert_eq!(w.node_states("fk-krev"), all(ObjState::Active), "step {n}");
        assert!(w.unfinished_revert("fk-krev").is_none(), "step {n}");
    }
}

// ---- status, access, commands on a lab that is not there ----

#[test]
fn status_and_list_read_the_lab_from_the_host() {
    let l = lab("fk-stat");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.stop_domain("dcos-lab-fk-stat-public").expect("stop");
    let rows =
        w.rt.block_on(crate::ops::status::list(&w.ctx))
            .expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].nodes, rows[0].running), (3, 2));
    let st =
        w.rt.block_on(crate::ops::status::status(&w.ctx, Some("fk-stat")))
            .expect("status");
    // Role order: boot, master, then the agent; addresses from the metadata alone.
    let names: Vec<&str> = st[0].state.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["boot", "master", "public"]);
    assert!(st[0].state.nodes.iter().all(|n| n.private_ipv4().is_some()));
    assert_eq!(st[0].state.networks.len(), 2);
    assert!(st[0].unfinished_revert.is_none());
    // A lab that is not there is an empty status, not an error.
    let none =
        w.rt.block_on(crate::ops::status::status(&w.ctx, Some("fk-none")))
            .expect("status");
    assert!(!none[0].state.exists());
}

#[test]
fn commands_on_a_lab_that_does_not_exist_are_bad_input_and_change_nothing() {
    let w = world();
    let ctx = &w.ctx;
    let rt = &w.rt;
    let errs = [
        rt.block_on(crate::ops::access::ssh_config_of(ctx, "fk-gone"))
            .map(|_| ())
            .expect_err("ssh-config"),
        rt.block_on(crate::ops::access::inventory_of(ctx, "fk-gone"))
            .map(|_| ())
            .expect_err("inventory"),
        rt.block_on(crate::ops::access::exec_on(
            ctx,
            "fk-gone",
            &[],
            &[],
            "true",
            Duration::from_secs(1),
        ))
        .map(|_| ())
        .expect_err("exec"),
        w.snapshot("fk-gone", "s1")
            .map(|_| ())
            .expect_err("snapshot"),
        w.revert("fk-gone", None).map(|_| ()).expect_err("revert"),
    ];
    for e in &errs {
        assert!(bad_input(e), "{e:#}");
        assert!(format!("{e:#}").contains("fk-gone"), "{e:#}");
    }
    assert!(w.hv.changes().is_empty());
    assert!(!ctx.dirs.lab("fk-gone").path().exists());
}

/// The overlay's calls, recorded.
#[derive(Default)]
struct RecordingOverlay(std::sync::Mutex<Vec<String>>);

impl crate::overlay::Overlay for RecordingOverlay {
    fn link(&self, overlay: &str, bridge: &str, vlan: u16) -> anyhow::Result<()> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("link {bridge} to {overlay} vlan {vlan}"));
        Ok(())
    }
    fn unlink(&self, bridge: &str) -> anyhow::Result<bool> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("unlink {bridge}"));
        Ok(true)
    }
}

fn span_lab(name: &str, extra: &str) -> Lab {
    let text = LAB.replace("NAME", name).replace("MEM", "256M").replacen(
        "nodes:",
        &format!("hosts:\n  r2: qemu+ssh://root@r2/system\n{extra}nodes:"),
        1,
    );
    crate::model::parse(&text, &format!("{name}.yaml"), None, &["debian-12"]).expect("valid")
}

/// A world with a second fake host `r2` reached, and an overlay that records its calls.
fn two_hosts(lab: &Lab) -> (World, Arc<FakeHypervisor>, Arc<RecordingOverlay>) {
    let mut w = world().with_image(lab);
    let r2 = FakeHypervisor::rooted(&w._dir.path().join("r2"));
    let h: Hv = r2.clone();
    w.ctx.add_hosts([("r2".to_string(), h)].into());
    w.guests.also_on(r2.clone());
    let overlay = Arc::new(RecordingOverlay::default());
    w.ctx.overlay = overlay.clone();
    (w, r2, overlay)
}

#[test]
fn up_across_hosts_makes_each_nodes_objects_on_its_host_and_down_removes_them_from_every_host() {
    let l = span_lab("fk-span", "placement: auto\n");
    let (w, r2, overlay) = two_hosts(&l);
    // Room for one node locally: auto sends the other two to r2.
    w.hv.set_free_memory(300 << 20);
    r2.set_free_memory(600 << 20);
    let up = w.up(&l).expect("up");
    let on_r2: Vec<&str> = up
        .nodes
        .iter()
        .filter(|n| n.host == "r2")
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(on_r2.len(), 2, "{:?}", up.nodes);
    assert!(up.nodes.iter().all(|n| n.state == ObjState::Active));
    let (local, remote) = (w.hv.changes(), r2.changes());
    // The first host: both networks (with the host addresses), joined to the overlay; one
    // domain. r2: the pool, the base image sent by upload, its networks on the overlay, its
    // nodes' disks, seeds and domains, and nothing of the first host's.
    assert_eq!(
        local
            .iter()
            .filter(|c| c.starts_with("define domain"))
            .count(),
        1,
        "{local:?}"
    );
    assert_eq!(
        remote
            .iter()
            .filter(|c| c.starts_with("define domain"))
            .count(),
        2,
        "{remote:?}"
    );
    for v in [
        "image.qcow2",
        "image.kernel",
        "image.initrd",
        "boot-seed.img",
    ] {
        assert!(
            remote
                .iter()
                .any(|c| c.starts_with(&format!("create volume {v} "))),
            "{v}: {remote:?}"
        );
    }
    assert!(!local.iter().any(|c| c.contains("image.")), "{local:?}");
    // The uploaded base image holds the local one's bytes.
    let pool = crate::names::LabDirs::remote("fk-span").pool();
    let img = crate::image::boot_image(&w.ctx.dirs, &l.image);
    let sent = w._dir.path().join("r2").join(
        pool.join("image.qcow2")
            .strip_prefix("/")
            .expect("absolute"),
    );
    assert_eq!(
        std::fs::read(sent).expect("uploaded"),
        std::fs::read(&img.disk).expect("image")
    );
    let links = overlay.0.lock().expect("lock").clone();
    assert_eq!(links.len(), 2, "{links:?}");
    // status reads the lab from both hosts, each node with its host.
    let state = w.state("fk-span");
    assert_eq!(state.nodes.len(), 3);
    assert_eq!(
        state.nodes.iter().filter(|n| n.host == "r2").count(),
        2,
        "{:?}",
        state.nodes
    );
    // ssh-config and the inventory say where each node runs.
    let config = w
        .run(crate::ops::access::ssh_config_of(&w.ctx, "fk-span"))
        .expect("ssh-config");
    assert!(
        config.contains("runs on host r2: reached over the overlay"),
        "{config}"
    );
    let inv = w
        .run(crate::ops::access::inventory_of(&w.ctx, "fk-span"))
        .expect("inventory");
    assert!(
        inv.contains("dcos_lab_host: r2") && inv.contains("dcos_lab_host: local"),
        "{inv}"
    );
    // A command that finds r2 gone names it, with the fix; it is not the user's input.
    let mut lost = Ctx::new(w.hv.clone(), w.guests.clone(), w.ctx.dirs.clone(), true);
    lost.owner = 0;
    let e = w
        .run(crate::ops::status::status(&lost, Some("fk-span")))
        .map(|_| ())
        .expect_err("r2 does not answer");
    assert!(!bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("on host r2, which does not answer")
            && format!("{e:#}").contains("the next `up` or `down` then takes over"),
        "{e:#}"
    );
    let e = w
        .run(crate::ops::lab::teardown::down(&lost, "fk-span"))
        .map(|_| ())
        .expect_err("down too");
    assert!(format!("{e:#}").contains("host r2"), "{e:#}");
    assert!(
        w.state("fk-span").exists(),
        "nothing removed while r2 is away"
    );
    // One snapshot across both hosts (every node paused on both before any is captured), a
    // revert to it; a golden lab is one host's, so export refuses.
    let mark = (w.hv.changes().len(), r2.changes().len());
    w.snapshot("fk-span", "s1").expect("snapshot");
    let (lc, rc) = (w.hv.changes(), r2.changes());
    let (lc, rc) = (&lc[mark.0..], &rc[mark.1..]);
    assert_eq!(
        lc.iter()
            .filter(|c| c.starts_with("snapshot domain"))
            .count(),
        1,
        "{lc:?}"
    );
    assert_eq!(
        rc.iter()
            .filter(|c| c.starts_with("snapshot domain"))
            .count(),
        2,
        "{rc:?}"
    );
    w.revert("fk-span", Some("s1")).expect("revert");
    assert!(
        r2.changes()
            .iter()
            .filter(|c| c.starts_with("revert"))
            .count()
            == 2,
        "{:?}",
        r2.changes()
    );
    assert!(
        w.state("fk-span")
            .nodes
            .iter()
            .all(|n| n.state == ObjState::Active)
    );
    let e = w
        .export(&l, "s1", &w._dir.path().join("fk-span.golden"))
        .expect_err("one host only");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("spans hosts"),
        "{e:#}"
    );
    // A second up changes nothing on either host.
    let before = (w.hv.changes().len(), r2.changes().len());
    let again = w.up(&l).expect("up again");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(before, (w.hv.changes().len(), r2.changes().len()));
    // down from a context that only knows the local host: the lab's networks name r2.
    let r = w.down("fk-span").expect("down");
    assert!(
        r.removed.iter().any(|x| x.ends_with("on r2")),
        "{:?}",
        r.removed
    );
    assert!(!w.state("fk-span").exists());
    assert!(
        r2.owned_domains().expect("list").is_empty()
            && r2.owned_networks().expect("list").is_empty()
            && r2.owned_pools().expect("list").is_empty(),
        "r2 still holds objects"
    );
    assert!(
        overlay
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.starts_with("unlink"))
            .count()
            == 2
    );
}

#[test]
fn up_across_hosts_refuses_a_host_short_of_memory_before_anything_is_made() {
    let l = span_lab("fk-up2", "placement: auto\n");
    let (w, r2, _overlay) = two_hosts(&l);
    let accel = crate::ops::decide_accel(&l, Some(AccelChoice::Tcg));
    let opts = crate::ops::up::UpOptions {
        wait: Duration::from_secs(30),
        install: None,
        nodes: Vec::new(),
    };
    // r2 too small for what auto gives it: that host is named, with its nodes.
    w.hv.set_free_memory(300 << 20);
    r2.set_free_memory(200 << 20);
    let e = w
        .run(crate::ops::up::up_command(
            &w.ctx,
            &l,
            "fk-up2.yaml",
            accel.clone(),
            &opts,
        ))
        .map(|_| ())
        .expect_err("too small");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("hosts.r2: host r2 has 0.2 GiB"),
        "{e:#}"
    );
    assert!(w.hv.changes().is_empty() && r2.changes().is_empty());
}

#[test]
fn a_node_the_lab_file_moves_to_another_host_is_a_changed_lab() {
    let l = span_lab("fk-move", "");
    let (w, r2, _overlay) = two_hosts(&l);
    w.up(&l).expect("up: every node local");
    assert!(r2.changes().is_empty(), "{:?}", r2.changes());
    let moved = span_lab("fk-move", "").clone();
    let mut moved = moved;
    if let Some(n) = moved.nodes.iter_mut().find(|n| n.name == "public") {
        n.host = Some("r2".into());
    }
    let e = w.up(&moved).map(|_| ()).expect_err("moved");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("node public is on host local, the lab file puts it on r2"),
        "{e:#}"
    );
}

#[test]
fn plan_across_hosts_places_by_free_memory_and_shows_each_object_with_its_host() {
    let text = LAB
        .replace("NAME", "fk-plan")
        .replace("MEM", "256M")
        .replacen(
            "nodes:",
            "hosts:\n  r2: qemu+ssh://root@r2/system\nplacement: auto\nnodes:",
            1,
        );
    let l = crate::model::parse(&text, "fk-plan.yaml", None, &["debian-12"]).expect("valid");
    let (local, r2) = (FakeHypervisor::new(), FakeHypervisor::new());
    local.set_free_memory(300 << 20);
    r2.set_free_memory(600 << 20);
    let accel = crate::ops::decide_accel(&l, Some(AccelChoice::Tcg));
    let dirs = world().ctx.dirs.clone();
    let hvs: std::collections::BTreeMap<String, &dyn crate::driver::Hypervisor> = [
        (
            "local".to_string(),
            &*local as &dyn crate::driver::Hypervisor,
        ),
        ("r2".to_string(), &*r2 as &dyn crate::driver::Hypervisor),
    ]
    .into();
    let r = crate::ops::plan::plan(&l, accel.clone(), &dirs, &hvs).expect("plan");
    // 256M nodes: r2 (600M free) takes two, local (300M) one.
    let p = r.placement.as_ref().expect("placement");
    let on = |h: &str| p.nodes.iter().filter(|n| n.host == h).count();
    assert_eq!((on("local"), on("r2")), (1, 2), "{p:?}");
    assert!(p.memory_known);
    for a in &r.actions {
        let host = a.host.as_deref().expect("every action names its host");
        if let Some(node) = match &a.action {
            crate::plan::Action::CreateDisk { node, .. }
            | crate::plan::Action::DefineDomain { node, .. }
            | crate::plan::Action::StartDomain { node, .. } => Some(node),
            _ => None,
        } {
            assert_eq!(host, p.host_of(node), "{a:?}");
        }
    }
    // The first host defines both networks (the host addresses live there); r2 those its nodes use.
    let nets = |h: &str| {
        r.actions
            .iter()
            .filter(|a| a.host.as_deref() == Some(h))
            .filter(|a| matches!(a.action, crate::plan::Action::DefineNetwork { .. }))
            .count()
    };
    assert_eq!(nets("local"), 2);
    assert!(nets("r2") >= 1);
    // r2's pool and disks are where `up` puts them there, not this host's paths.
    for a in r.actions.iter().filter(|a| a.host.as_deref() == Some("r2")) {
        match &a.action {
            crate::plan::Action::CreatePool { path, .. } => {
                assert!(path.starts_with(crate::names::REMOTE_ROOT), "{a:?}")
            }
            crate::plan::Action::CreateDisk { backing, .. } => {
                assert!(backing.starts_with(crate::names::REMOTE_ROOT), "{a:?}")
            }
            _ => {}
        }
    }
    let text = crate::ops::plan::describe(&r);
    assert!(text.contains("[r2] define domain"), "{text}");
    assert!(text.contains("on r2 (placement: auto)"), "{text}");
    // Not enough memory anywhere: bad input naming the host, and the plan reads, never writes.
    r2.set_free_memory(100 << 20);
    let e = crate::ops::plan::plan(&l, accel, &dirs, &hvs).expect_err("too little");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("hosts.r2: host r2 has 0.1 GiB"),
        "{e:#}"
    );
    assert!(local.changes().is_empty() && r2.changes().is_empty());
}

#[test]
fn down_all_also_finds_a_lab_known_only_by_its_directory() {
    let l = lab("fk-dir");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    // A lab whose libvirt objects are gone, but whose directory is left (a crash mid-down).
    let stale = w.ctx.dirs.lab("fk-stale");
    std::fs::create_dir_all(stale.path().join("console")).expect("stale dir");
    let reports =
        w.rt.block_on(crate::ops::down::down_labs(&w.ctx, None))
            .expect("down --all");
    let labs: Vec<&str> = reports.iter().map(|r| r.lab.as_str()).collect();
    assert_eq!(labs, ["fk-dir", "fk-stale"]);
    assert!(w.hv.objects().is_empty());
    assert!(!stale.path().exists());
}

/// Labs belong to the user who made them (the owner in every object's metadata): another
/// user's `list` and `down --all` do not see them, and an `up`, `status` or `down` of that name
/// by another user is refused naming the owner, before anything changes. The owner's own
/// commands work as before.
#[test]
fn a_lab_belongs_to_its_user_and_another_user_neither_sees_nor_touches_it() {
    let mut mine = lab("fk-alice");
    mine.owner = 1000;
    let mut w = world().with_image(&mine);
    w.ctx.owner = 1000;
    w.up(&mine).expect("alice's up");
    let rootlab = lab("fk-root");
    w.ctx.owner = 0;
    w.up(&rootlab).expect("root's up");
    let before = w.hv.changes().len();

    // Root's view: its own lab only; `down --all` leaves alice's.
    let rows =
        w.rt.block_on(crate::ops::status::list(&w.ctx))
            .expect("list");
    let names: Vec<&str> = rows.iter().map(|r| r.lab.as_str()).collect();
    assert_eq!(names, ["fk-root"]);
    let e = w.down("fk-alice").expect_err("another user's lab");
    let msg = format!("{e:#}");
    assert!(
        bad_input(&e) && msg.contains("belongs to another user") && msg.contains("1000"),
        "{msg}"
    );
    let e =
        w.rt.block_on(lab_state::read(&w.ctx, "fk-alice"))
            .expect_err("status");
    assert!(bad_input(&e), "{e:#}");
    let mut same_name = lab("fk-alice");
    same_name.owner = 0;
    let e = w.up(&same_name).expect_err("the name is taken");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("another name"),
        "{e:#}"
    );
    assert_eq!(
        w.hv.changes().len(),
        before,
        "a refused command changed the host"
    );
    let reports =
        w.rt.block_on(crate::ops::down::down_labs(&w.ctx, None))
            .expect("down --all");
    let labs: Vec<&str> = reports.iter().map(|r| r.lab.as_str()).collect();
    assert_eq!(labs, ["fk-root"]);
    assert_eq!(w.node_states_of(1000, "fk-alice"), all(ObjState::Active));

    // Alice's own commands see and remove it.
    w.ctx.owner = 1000;
    w.down("fk-alice").expect("alice's down");
    assert!(w.hv.objects().is_empty(), "{:?}", w.hv.objects());
}

// ---- golden labs ----

impl World {
    fn export(&self, lab: &Lab, name: &str, file: &std::path::Path) -> anyhow::Result<()> {
        self.run(crate::ops::golden::export(
            &self.ctx, lab, name, file, false,
        ))
        .map(|_| ())
    }

    fn restore(
        &self,
        lab: &Lab,
        file: &std::path::Path,
    ) -> anyhow::Result<crate::ops::lab::making::UpReport> {
        let arg = lab.source.clone();
        self.run(crate::ops::golden::restore(
            &self.ctx,
            &arg,
            file,
            Duration::from_secs(30),
        ))
    }
}

/// A lab whose file is on disk (a golden keeps the file's text; `up --from` is given the file).
fn lab_on_disk(w: &World, name: &str) -> Lab {
    let path = w.ctx.dirs.state.join(format!("{name}.yaml"));
    std::fs::create_dir_all(&w.ctx.dirs.state).expect("state");
    std::fs::write(&path, LAB.replace("NAME", name).replace("MEM", "256M")).expect("lab file");
    let mut lab = crate::ops::load_lab(path.to_str().expect("utf8")).expect("lab");
    // The world's user, whoever runs the tests.
    lab.owner = w.ctx.owner;
    lab
}

/// Runs GNU tar, which must succeed.
fn tar(args: &[&std::ffi::OsStr]) {
    let st = std::process::Command::new("tar")
        .args(args)
        .status()
        .expect("tar");
    assert!(st.success(), "tar {args:?}");
}

/// Packs an unpacked golden in `dir` into `file` again, members in the export's order (with the
/// manifest as it is now: a test edits a member or the manifest first).
fn repack(dir: &std::path::Path, file: &std::path::Path) {
    tar(&[
        "-cf".as_ref(),
        file.as_os_str(),
        "-C".as_ref(),
        dir.as_os_str(),
        "golden.json".as_ref(),
        "lab.yaml".as_ref(),
        "ssh".as_ref(),
        "snapshots".as_ref(),
        "disks".as_ref(),
    ]);
}

fn golden_world(name: &str) -> (World, Lab, std::path::PathBuf) {
    let w = world();
    let l = lab_on_disk(&w, name);
    let w = w.with_image(&l);
    w.up(&l).expect("up");
    w.snapshot(name, "gold").expect("snapshot");
    let file = w.ctx.dirs.state.join("gold.tar");
    w.export(&l, "gold", &file).expect("export");
    (w, l, file)
}

#[test]
fn a_golden_comes_back_running_at_its_snapshot_with_its_keys() {
    let (w, l, file) = golden_world("fk-gold");
    let key = std::fs::read(w.ctx.dirs.lab("fk-gold").ssh_key()).expect("key");
    assert_eq!(w.node_states("fk-gold"), all(ObjState::Active));
    w.down("fk-gold").expect("down");
    assert!(w.hv.objects().is_empty());
    let before = w.guests.ran.lock().expect("ran").len();
    let r = w.restore(&l, &file).expect("up --from");
    assert_eq!(r.lab, "fk-gold");
    assert_eq!(w.node_states("fk-gold"), all(ObjState::Active));
    assert_eq!(w.state("fk-gold").snapshots, ["gold"]);
    assert_eq!(
        std::fs::read(w.ctx.dirs.lab("fk-gold").ssh_key()).expect("key"),
        key,
        "the lab's own key comes back"
    );
    // Resumed by a revert: clocks set and random state renewed on every node.
    let ran = w.guests.ran.lock().expect("ran").clone();
    let reseeded = ran[before..]
        .iter()
        .filter(|(_, c, _)| c.contains("python3"))
        .count();
    assert_eq!(reseeded, 3);
    // Afterwards a plain `up` changes nothing, and `down` leaves nothing.
    let again = w.up(&l).expect("up");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    w.down("fk-gold").expect("down");
    assert!(w.hv.objects().is_empty());
}

/// A golden made under one state directory comes back under another (another user, another
/// machine, another test's lab): the restored nodes are the lab file's, so a plain `up` after it
/// changes nothing. (The revert that resumes them puts back the definitions the snapshots hold,
/// written with the exporting host's paths.)
#[test]
fn a_golden_restored_under_another_state_dir_is_the_lab_files_lab() {
    let (w, _, file) = golden_world("fk-moved");
    w.down("fk-moved").expect("down");
    let dir = tempfile::tempdir().expect("tempdir");
    // Another state directory; the same image cache (the fake's disks are no qcow2 files that
    // `qemu-img rebase` could move to another).
    let dirs = Dirs {
        state: dir.path().join("state"),
        cache: w.ctx.dirs.cache.clone(),
        shared: None,
    };
    let h: Hv = w.hv.clone();
    let other = World {
        _dir: dir,
        hv: w.hv.clone(),
        guests: w.guests.clone(),
        ctx: {
            let mut c = Ctx::new(h, w.guests.clone(), dirs, true);
            c.owner = 0;
            c
        },
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    };
    let l = lab_on_disk(&other, "fk-moved");
    other.restore(&l, &file).expect("up --from");
    let again = other.up(&l).expect("up after up --from");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    other.down("fk-moved").expect("down");
    assert!(other.hv.objects().is_empty());
}

#[test]
fn a_golden_is_refused_beside_a_lab_of_its_name_or_under_another_name() {
    let (w, l, file) = golden_world("fk-clash");
    let before = w.hv.changes();
    let e = w.restore(&l, &file).expect_err("the lab exists");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("exists on this host"),
        "{e:#}"
    );
    let other = lab_on_disk(&w, "fk-other");
    let e = w.restore(&other, &file).expect_err("another name");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("is a golden of lab fk-clash"),
        "{e:#}"
    );
    assert_eq!(w.hv.changes(), before);
    assert!(!w.ctx.dirs.lab("fk-other").path().exists());
}

#[test]
fn a_damaged_golden_is_refused_naming_the_member_and_nothing_is_made() {
    let (w, l, file) = golden_world("fk-bad");
    w.down("fk-bad").expect("down");
    let changes = w.hv.changes().len();
    let state_entries = || {
        let mut v: Vec<String> = std::fs::read_dir(&w.ctx.dirs.state)
            .expect("state")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let clean = state_entries();
    // A member changed after the manifest was written.
    let x = tempfile::tempdir().expect("dir");
    tar(&[
        "-xf".as_ref(),
        file.as_os_str(),
        "-C".as_ref(),
        x.path().as_os_str(),
    ]);
    let mut text = std::fs::read(x.path().join("lab.yaml")).expect("lab.yaml");
    let last = text.len() - 2;
    text[last] ^= 0x20; // one byte, same size
    std::fs::write(x.path().join("lab.yaml"), text).expect("edit");
    let changed = w.ctx.dirs.state.join("changed.tar");
    repack(x.path(), &changed);
    let e = w.restore(&l, &changed).expect_err("changed member");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("member lab.yaml does not match its SHA-256"),
        "{e:#}"
    );
    // A manifest that names a file outside the golden (the host's own, to hash or compare).
    let manifest = std::fs::read_to_string(x.path().join("golden.json")).expect("manifest");
    std::fs::write(
        x.path().join("golden.json"),
        manifest.replacen("\"lab.yaml\"", "\"../../../../etc/hostname\"", 1),
    )
    .expect("edit");
    let outside = w.ctx.dirs.state.join("outside.tar");
    repack(x.path(), &outside);
    let e = w.restore(&l, &outside).expect_err("member outside");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("outside the golden"),
        "{e:#}"
    );
    std::fs::write(x.path().join("golden.json"), manifest).expect("restore manifest");
    // Cut short.
    let bytes = std::fs::read(&file).expect("read");
    let short = w.ctx.dirs.state.join("short.tar");
    std::fs::write(&short, &bytes[..bytes.len() / 3]).expect("write");
    let e = w.restore(&l, &short).expect_err("truncated");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("member "),
        "names the member: {e:#}"
    );
    // Not a golden at all.
    let other = w.ctx.dirs.state.join("other.tar");
    tar(&[
        "-cf".as_ref(),
        other.as_os_str(),
        "-C".as_ref(),
        x.path().as_os_str(),
        "lab.yaml".as_ref(),
    ]);
    let e = w.restore(&l, &other).expect_err("not a golden");
    assert!(
        bad_input(&e) && format!("{e:#}").contains("has no golden.json"),
        "{e:#}"
    );
    std::fs::write(&other, b"hello").expect("write");
    let e = w.restore(&l, &other).expect_err("not a tar");
    assert!(bad_input(&e), "{e:#}");

    assert_eq!(
        w.hv.changes().len(),
        changes,
        "a refused restore changed the host"
    );
    let mut now = state_entries();
    now.retain(|n| !n.ends_with(".tar"));
    let mut was = clean;
    was.retain(|n| !n.ends_with(".tar"));
    assert_eq!(now, was, "a refused restore left files");
}

/// `up --from` killed after each of its steps: the next `up --from` takes over (or `down`
/// removes everything).
#[test]
fn up_from_killed_after_any_step_is_taken_over() {
    let (probe, l, file) = golden_world("fk-kgold");
    probe.down("fk-kgold").expect("down");
    let before = probe.hv.changes().len();
    probe.restore(&l, &file).expect("restore");
    let steps = probe.hv.changes().len() - before;
    assert!(steps >= 12, "{:?}", &probe.hv.changes()[before..]);
    for n in 0..steps {
        let (w, l, file) = golden_world("fk-kgold");
        w.down("fk-kgold").expect("down");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.restore(&l, &file).is_err(), "step {n}");
        w.hv.revive();
        if n % 2 == 0 {
            w.restore(&l, &file)
                .unwrap_or_else(|e| panic!("up --from after a kill at step {n}: {e:#}"));
            assert_eq!(w.node_states("fk-kgold"), all(ObjState::Active), "step {n}");
            assert_eq!(w.state("fk-kgold").snapshots, ["gold"], "step {n}");
        }
        w.down("fk-kgold").expect("down");
        assert!(w.hv.objects().is_empty(), "step {n}: {:?}", w.hv.objects());
        assert!(!w.ctx.dirs.lab("fk-kgold").path().exists(), "step {n}");
    }
}

#[test]
fn a_golden_from_another_qemu_or_accelerator_is_refused_naming_what_differs() {
    let (w, l, file) = golden_world("fk-ver");
    w.down("fk-ver").expect("down");
    let x = tempfile::tempdir().expect("dir");
    tar(&[
        "-xf".as_ref(),
        file.as_os_str(),
        "-C".as_ref(),
        x.path().as_os_str(),
    ]);
    let manifest = x.path().join("golden.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).expect("read")).expect("json");
    m["versions"]["hypervisor"] = "QEMU 9.9.9".into();
    m["versions"]["accel"] = "hvf".into();
    std::fs::write(&manifest, m.to_string()).expect("write");
    let other = w.ctx.dirs.state.join("other-host.tar");
    repack(x.path(), &other);
    let changes = w.hv.changes().len();
    let e = w.restore(&l, &other).expect_err("another host");
    let msg = format!("{e:#}");
    assert!(bad_input(&e), "{msg}");
    assert!(
        msg.contains("hypervisor fake here, QEMU 9.9.9 in the golden"),
        "{msg}"
    );
    assert!(msg.contains("here, hvf in the golden"), "{msg}");
    assert_eq!(w.hv.changes().len(), changes);
    assert!(!w.ctx.dirs.lab("fk-ver").path().exists());
}

/// Every member's hash and size in the manifest made to match the files again, as anyone who
/// edits a golden can: the hashes prove integrity against accidents, not against an author.
fn rehash(dir: &std::path::Path) {
    use sha2::Digest;
    let path = dir.join("golden.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let names: Vec<String> = m["members"]
        .as_object()
        .expect("members")
        .keys()
        .cloned()
        .collect();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).expect("member");
        m["members"][&name] = serde_json::json!({
            "sha256": format!("{:x}", sha2::Sha256::digest(&bytes)),
            "bytes": bytes.len(),
        });
    }
    std::fs::write(&path, m.to_string()).expect("write");
}

/// Goldens edited by hand, hashes recomputed, each refused with exit 2 (bad input) naming the
/// member and what it points at, before anything is made: a disk backed by a host file, a disk
/// of another size, a snapshot whose seed disk is a host file, one that shares a host
/// directory, a manifest naming a node the lab has not (a path), a golden lab file naming an
/// image on the host. The good golden restores after them all.
#[test]
fn a_hostile_golden_is_refused_naming_the_member_and_what_it_points_at() {
    let (w, l, file) = golden_world("fk-hostile");
    w.down("fk-hostile").expect("down");
    let changes = w.hv.changes().len();
    let x = tempfile::tempdir().expect("dir");
    let unpack = || {
        let _ = std::fs::remove_dir_all(x.path());
        std::fs::create_dir_all(x.path()).expect("dir");
        tar(&[
            "-xf".as_ref(),
            file.as_os_str(),
            "-C".as_ref(),
            x.path().as_os_str(),
        ]);
    };
    let seed = w
        .ctx
        .dirs
        .lab("fk-hostile")
        .seed("master")
        .display()
        .to_string();
    let disk = |node: &str, size: u64, backing: &str, fmt: &str| {
        std::fs::write(
            x.path().join(format!("disks/{node}.qcow2")),
            crate::image::qcow2::bare_header(size, Some((backing, fmt))),
        )
        .expect("disk")
    };
    let edit = |member: &str, f: &dyn Fn(String) -> String| {
        let p = x.path().join(member);
        let text = std::fs::read_to_string(&p).expect("member");
        let changed = f(text.clone());
        assert_ne!(changed, text, "{member}: the edit changed nothing");
        std::fs::write(&p, changed).expect("edit");
    };
    let size = l.nodes[0].disk.bytes();
    // What is wrong, how the test makes it, what the refusal must name.
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Vec<String>);
    let cases: Vec<Case> = vec![
        (
            "a disk backed by a host file",
            Box::new(|| disk("master", size, "/var/tmp/FILE", "raw")),
            vec!["disks/master.qcow2".into(), "/var/tmp/FILE".into()],
        ),
        (
            "a disk of another size",
            Box::new(|| {
                let h = crate::image::qcow2::DiskFile::read(&x.path().join("disks/master.qcow2"));
                let Ok(crate::image::qcow2::DiskFile::Qcow2(q)) = h else {
                    panic!("the fake's disk is a qcow2 header: {h:?}");
                };
                disk(
                    "master",
                    size * 2,
                    q.backing.as_deref().expect("backed"),
                    "qcow2",
                )
            }),
            vec!["disks/master.qcow2".into(), "bytes".into()],
        ),
        (
            "a seed disk pointed at a host file",
            Box::new(|| {
                edit("snapshots/master.xml", &|t| {
                    t.replace(&seed, "/var/tmp/FILE")
                })
            }),
            vec!["snapshots/master.xml".into(), "/var/tmp/FILE".into()],
        ),
        (
            "a shared host directory",
            Box::new(|| {
                edit("snapshots/master.xml", &|t| {
                    t.replacen(
                        "<devices>",
                        "<devices><filesystem type='mount'><source dir='/var/tmp/dltest-share'/><target dir='s'/></filesystem>",
                        1,
                    )
                })
            }),
            vec![
                "snapshots/master.xml".into(),
                "<filesystem".into(),
                "/var/tmp/dltest-share".into(),
            ],
        ),
        (
            "a node the lab has not",
            Box::new(|| {
                edit("golden.json", &|t| {
                    let mut m: serde_json::Value = serde_json::from_str(&t).expect("json");
                    m["nodes"][1] = "../../../etc".into();
                    m.to_string()
                })
            }),
            vec!["golden.json".into(), "../../../etc".into()],
        ),
        (
            "a golden lab file naming a host file as its image",
            Box::new(|| {
                edit("lab.yaml", &|t| {
                    t.lines()
                        .map(|l| {
                            if l.starts_with("image:") {
                                "image: /var/tmp/FILE.qcow2"
                            } else {
                                l
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            }),
            vec!["lab.yaml".into(), "/var/tmp/FILE.qcow2".into()],
        ),
    ];
    for (what, make, says) in &cases {
        unpack();
        make();
        rehash(x.path());
        let hostile = w.ctx.dirs.state.join("hostile.tar");
        repack(x.path(), &hostile);
        // The golden's own lab file is what `up LAB` uses when only the name is given.
        let arg = if what.contains("lab file") {
            "fk-hostile".to_string()
        } else {
            l.source.clone()
        };
        let e = w
            .run(crate::ops::golden::restore(
                &w.ctx,
                &arg,
                &hostile,
                Duration::from_secs(30),
            ))
            .expect_err(what);
        let msg = format!("{e:#}");
        assert!(bad_input(&e), "{what}: {msg}");
        for s in says {
            assert!(msg.contains(s.as_str()), "{what}: {s:?} not in: {msg}");
        }
        assert_eq!(w.hv.changes().len(), changes, "{what}: the host changed");
        assert!(!w.ctx.dirs.lab("fk-hostile").path().exists(), "{what}");
    }
    w.restore(&l, &file).expect("the good golden");
    assert_eq!(w.node_states("fk-hostile"), all(ObjState::Active));
    w.down("fk-hostile").expect("down");
}

/// A plain user's lab (docs/laptop.md): what QEMU reads (disks, seeds, console logs, a copy of
/// the base image) in the user's shared directory, made as a pool owned by the user; the key
/// and pinned host keys in the user's own directory, 0700. `down` removes both and the lab's
/// pool, and leaves the shared directory (the user's images) in place.
#[test]
fn a_plain_users_lab_is_split_between_the_shared_directory_and_their_own() {
    use std::os::unix::fs::PermissionsExt;
    let l = lab("fk-user");
    let mut w = world();
    let shared = w._dir.path().join("libvirt/dcos-lab/user-1000");
    w.ctx.dirs.shared = Some(crate::paths::Shared {
        dir: shared.clone(),
        uid: crate::host::euid(),
        gid: crate::host::egid(),
    });
    let w = w.with_image(&l);
    w.up(&l).expect("up");

    let pool = crate::paths::shared_pool_name(crate::host::euid());
    let info = w.hv.pool(&pool).expect("read").expect("the shared pool");
    assert_eq!(std::path::Path::new(&info.path), shared);
    let dirs = w.ctx.dirs.lab("fk-user");
    assert!(dirs.root.starts_with(&shared), "{}", dirs.root.display());
    assert!(!dirs.private.starts_with(&shared));
    let lab_pool = w.hv.pool("dcos-lab-fk-user").expect("read").expect("pool");
    assert_eq!(std::path::Path::new(&lab_pool.path), dirs.pool());
    for n in ["boot", "master", "public"] {
        assert!(dirs.seed(n).is_file(), "seed of {n}");
        assert!(dirs.disk(n).is_file(), "disk of {n}");
    }
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dirs.private), 0o700);
    assert_eq!(mode(&dirs.ssh_key()), 0o600);
    assert!(!dirs.root.join("ssh").exists(), "no key where QEMU reads");
    // Every node boots from the copy of the image in the shared directory, and logs its
    // console into the pool.
    let image = crate::image::qemu_image(&w.ctx.dirs, &l.image);
    assert!(image.disk.starts_with(shared.join("images")));
    assert!(image.disk.is_file(), "published");
    let xml = w.hv.domain_xml("dcos-lab-fk-user-master").expect("xml");
    assert!(xml.contains(&image.disk.display().to_string()), "{xml}");
    assert!(
        xml.contains(&dirs.pool().join("console-master.log").display().to_string()),
        "{xml}"
    );
    assert!(
        !xml.contains(&w.ctx.dirs.cache.display().to_string()),
        "{xml}"
    );

    w.run(crate::ops::lab::teardown::down(&w.ctx, "fk-user"))
        .expect("down");
    assert!(w.hv.pool("dcos-lab-fk-user").expect("read").is_none());
    assert!(!dirs.root.exists() && !dirs.private.exists());
    assert!(
        w.hv.pool(&pool).expect("read").is_some(),
        "the user's images stay"
    );
    assert!(image.disk.is_file());
}

/// Every node by name from the host: `up` adds the lab's block to the hosts file, `down`
/// removes exactly it; two labs with a node `master` each keep their own; the host's own lines
/// stay. A hosts file the user may not write does not stop `up`: it says so, with the fix.
#[test]
fn up_and_down_keep_the_nodes_names_in_the_hosts_file() {
    let (one, two) = (lab("fk-name1"), lab("fk-name2"));
    let mut w = world();
    let hosts = w._dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
    w.ctx.hosts_file = Some(hosts.clone());
    let w = w.with_image(&one);
    w.up(&one).expect("up one");
    w.up(&two).expect("up two");
    let text = std::fs::read_to_string(&hosts).expect("read");
    for l in [&one, &two] {
        let addrs = crate::plan::plan_addresses(l);
        for n in &l.nodes {
            let ip = addrs
                .node(&n.name)
                .and_then(|a| a.private_ipv4())
                .expect("ip");
            let line = format!("{ip} {}.{}\n", n.name, l.name);
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
    w.run(crate::ops::lab::teardown::down(&w.ctx, "fk-name1"))
        .expect("down");
    let text = std::fs::read_to_string(&hosts).expect("read");
    assert!(!text.contains("fk-name1"), "{text}");
    assert!(text.contains("master.fk-name2"), "{text}");
    w.run(crate::ops::lab::teardown::down(&w.ctx, "fk-name2"))
        .expect("down");
    assert_eq!(
        std::fs::read_to_string(&hosts).expect("read"),
        "127.0.0.1 localhost\n"
    );

    // Not writable (a plain user before the one-time setup; here a directory stands for it).
    let mut w2 = world();
    w2.ctx.hosts_file = Some(w2._dir.path().to_path_buf());
    let w2 = w2.with_image(&one);
    let r = w2.up(&one).expect("up without names");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("fix:"), "{:?}", r.warnings);
}

// ---- commands on the nodes, through the `Guests` seam: exec, install, verify, status ----

/// The fake nodes' answers to the install's state file: what each node has recorded, by node.
fn answering_state(
    states: std::collections::BTreeMap<String, String>,
) -> impl Fn(&str, &str, &[u8]) -> crate::guest::Output + Send + Sync + 'static {
    move |node, command, input| {
        if command.starts_with(&format!("cat {}", crate::ops::lab::dcos::STATE_FILE)) {
            return crate::guest::Output {
                status: Some(0),
                stdout: states.get(node).cloned().unwrap_or_default().into_bytes(),
                stderr: Vec::new(),
            };
        }
        crate::driver::fake::echo(node, command, input)
    }
}

/// A lab that installs DC/OS from `installer`.
fn dcos_lab(name: &str, installer: &std::path::Path) -> Lab {
    let text = format!(
        "{}dcos:\n  installer: {}\n",
        LAB.replace("NAME", name).replace("MEM", "256M"),
        installer.display()
    );
    crate::model::parse(&text, &format!("{name}.yaml"), None, &["debian-12"]).expect("valid lab")
}

fn install(w: &World, l: &Lab) -> anyhow::Result<crate::ops::lab::dcos::InstallReport> {
    let opts = crate::ops::lab::dcos::InstallOptions {
        timeout: Duration::from_secs(5),
    };
    w.run(crate::ops::lab::dcos::install(&w.ctx, l, &opts))
}

/// Where in everything the nodes ran the first command on `node` containing `text` is.
fn position(w: &World, node: &str, text: &str) -> Option<usize> {
    w.guests
        .ran
        .lock()
        .expect("ran")
        .iter()
        .position(|(n, c, _)| n == node && c.contains(text))
}

#[test]
fn exec_runs_on_the_chosen_nodes_and_names_the_one_that_does_not_answer() {
    let l = lab("fk-exec");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.guests.make_unreachable("public");
    let run = |nodes: &[&str], roles: &[&str]| {
        let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
        let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
        w.rt.block_on(crate::ops::access::exec_on(
            &w.ctx,
            "fk-exec",
            &nodes,
            &roles,
            "hostname",
            Duration::from_secs(1),
        ))
    };
    let all = run(&[], &[]).expect("exec");
    let got: Vec<(&str, Option<u32>)> = all.iter().map(|r| (r.node.as_str(), r.status)).collect();
    assert_eq!(
        got,
        [("boot", Some(0)), ("master", Some(0)), ("public", None)]
    );
    let err = all[2].error.as_deref().expect("public's error");
    assert!(err.contains("public") && err.contains("no answer"), "{err}");
    assert_eq!(w.guests.commands_on("boot"), ["hostname"]);
    assert!(w.guests.commands_on("public").is_empty());

    let masters = run(&[], &["master"]).expect("exec");
    assert_eq!(masters.len(), 1);
    assert_eq!(masters[0].node, "master");
    for bad in [run(&["nope"], &[]), run(&[], &["captain"])] {
        let e = bad.expect_err("refused");
        assert!(bad_input(&e), "{e:#}");
    }
}

#[test]
fn install_serves_on_the_boot_node_then_installs_every_master_before_any_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let installer = dir.path().join("dcos_generate_config.sh");
    std::fs::write(&installer, b"#!/bin/sh\necho fake installer\n").expect("installer");
    let l = dcos_lab("fk-inst", &installer);
    let w = world().with_image(&l);
    w.up(&l).expect("up");

    let r = install(&w, &l).expect("install");
    let outcomes: Vec<(&str, &str)> = r
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("boot", "served"),
            ("master", "installed"),
            ("public", "installed")
        ]
    );
    // The user's installer reached the boot node byte for byte, and genconf ran there.
    let ran = w.guests.ran.lock().expect("ran").clone();
    assert!(
        ran.iter().any(|(n, c, input)| n == "boot"
            && c.contains("dcos_generate_config.sh.part")
            && input.as_slice() == b"#!/bin/sh\necho fake installer\n"),
        "no upload of the installer"
    );
    let genconf = position(&w, "boot", "bash dcos_generate_config.sh").expect("genconf");
    let master = position(&w, "master", "dcos_install.sh master").expect("master install");
    let agent = position(&w, "public", "dcos_install.sh slave_public").expect("agent install");
    assert!(
        genconf < master && master < agent,
        "{genconf} {master} {agent}"
    );
    // Masters are healthy before any agent starts.
    let master_healthy = ran
        .iter()
        .rposition(|(n, c, _)| n == "master" && c.contains("node-poststart"))
        .expect("master's health check");
    assert!(master_healthy < agent);
}

#[test]
fn install_again_skips_what_each_node_has_done_for_the_same_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let installer = dir.path().join("dcos_generate_config.sh");
    std::fs::write(&installer, b"#!/bin/sh\n").expect("installer");
    let l = dcos_lab("fk-resume", &installer);
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let config = install(&w, &l).expect("first install").config;

    // The nodes say what they did: the boot node serves, the master is installed, the agent
    // stopped before its install.
    let states = [
        ("boot", format!("serving {config}")),
        ("master", format!("installed {config} master")),
        ("public", format!("running install {config}")),
    ];
    w.guests.answer(answering_state(
        states
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect(),
    ));
    w.guests.ran.lock().expect("ran").clear();
    let r = install(&w, &l).expect("second install");
    let outcomes: Vec<&str> = r.nodes.iter().map(|n| n.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["already served", "already installed", "installed"]
    );
    assert!(position(&w, "boot", "bash dcos_generate_config.sh").is_none());
    assert!(position(&w, "master", "dcos_install.sh").is_none());
    assert!(position(&w, "public", "dcos_install.sh slave_public").is_some());

    // A node installed from another configuration is refused, nothing run on the nodes.
    w.guests.answer(answering_state(
        [(
            "master".to_string(),
            "installed 0123abcd master".to_string(),
        )]
        .into(),
    ));
    w.guests.ran.lock().expect("ran").clear();
    let e = install(&w, &l).expect_err("refused");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        matches!(
            e.downcast_ref(),
            Some(crate::ops::lab::dcos::InstallError::OtherConfig { node, .. }) if node == "master"
        ),
        "{e:#}"
    );
    assert!(position(&w, "boot", "dcos_generate_config").is_none());
}

#[test]
fn an_install_that_fails_on_a_master_names_node_and_phase_and_no_agent_installs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let installer = dir.path().join("dcos_generate_config.sh");
    std::fs::write(&installer, b"#!/bin/sh\n").expect("installer");
    let l = dcos_lab("fk-fail", &installer);
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.guests.answer(|node, command, input| {
        if node == "master" && command.contains("dcos_install.sh master") {
            return crate::guest::Output {
                status: Some(1),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
        }
        crate::driver::fake::echo(node, command, input)
    });
    let e = install(&w, &l).expect_err("fails");
    let failed = e
        .downcast_ref::<crate::ops::lab::dcos::InstallError>()
        .and_then(|i| i.phase_failed())
        .unwrap_or_else(|| panic!("not a failed phase: {e:#}"));
    assert_eq!(failed.node, "master");
    assert_eq!(failed.phase.as_str(), "install");
    assert!(position(&w, "public", "dcos_install.sh").is_none());
}

#[test]
fn verify_reads_each_nodes_facts_through_the_guests_and_fails_one_that_does_not_answer() {
    let l = lab("fk-verify");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.guests.make_unreachable("master");
    let r =
        w.rt.block_on(crate::ops::verify::run(&w.ctx, &l))
            .expect("verify");
    let master: Vec<_> = r.checks.iter().filter(|c| c.node == "master").collect();
    assert_eq!(master.len(), 1, "{master:?}");
    assert_eq!(master[0].name, "ssh");
    assert!(!master[0].passed);
    // The others ran the facts script and were judged on what it printed (nothing: every
    // fact is missing, so their checks fail).
    for node in ["boot", "public"] {
        assert_eq!(w.guests.commands_on(node).len(), 1, "{node}");
        let checks: Vec<_> = r.checks.iter().filter(|c| c.node == node).collect();
        assert!(checks.len() > 5, "{node}: {checks:?}");
        assert!(checks.iter().any(|c| !c.passed), "{node}");
    }
}

#[test]
fn status_asks_each_running_node_its_install_state() {
    let l = lab("fk-probe");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.guests.answer(answering_state(
        [("master".to_string(), "installed abcd master".to_string())].into(),
    ));
    w.hv.stop_domain("dcos-lab-fk-probe-public").expect("stop");
    let st =
        w.rt.block_on(crate::ops::status::status(&w.ctx, Some("fk-probe")))
            .expect("status");
    let install = &st[0].install;
    assert!(
        matches!(&install["master"], crate::ops::lab::dcos::NodeInstall::Installed { config, .. } if config == "abcd"),
        "{:?}",
        install["master"]
    );
    assert!(matches!(
        install["boot"],
        crate::ops::lab::dcos::NodeInstall::None
    ));
    assert!(
        matches!(&install["public"], crate::ops::lab::dcos::NodeInstall::Unknown { reason } if *reason == format!("node is {}", ObjState::Inactive)),
        "{:?}",
        install["public"]
    );
}

#[test]
fn ssh_config_and_inventory_name_every_node_with_the_labs_key() {
    let l = lab("fk-sshcfg");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let key = w.ctx.dirs.lab("fk-sshcfg").ssh_key();
    let cfg =
        w.rt.block_on(crate::ops::access::ssh_config_of(&w.ctx, "fk-sshcfg"))
            .expect("ssh-config");
    let inv =
        w.rt.block_on(crate::ops::access::inventory_of(&w.ctx, "fk-sshcfg"))
            .expect("inventory");
    for node in ["boot", "master", "public"] {
        assert!(cfg.contains(&format!("Host {node}.fk-sshcfg ")), "{cfg}");
        assert!(inv.contains(&format!("        {node}:\n")), "{inv}");
    }
    assert!(
        cfg.contains(&format!("IdentityFile {}", key.display())),
        "{cfg}"
    );
    assert!(inv.contains(&key.display().to_string()), "{inv}");
}

// ---- suspend and resume ----

impl World {
    fn suspend(&self, lab: &str) -> anyhow::Result<crate::ops::lab::suspension::SuspendReport> {
        self.run(crate::ops::lab::suspension::suspend(&self.ctx, lab))
    }

    fn resume(&self, lab: &str) -> anyhow::Result<crate::ops::lab::suspension::ResumeReport> {
        self.run(crate::ops::lab::suspension::resume(
            &self.ctx,
            lab,
            Duration::from_secs(30),
        ))
    }
}

#[test]
fn suspend_pauses_every_node_before_saving_any_and_resume_brings_the_lab_back() {
    let l = lab("fk-susp");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let before = w.hv.changes().len();
    let r = w.suspend("fk-susp").expect("suspend");
    assert_eq!(r.suspended, ["boot", "master", "public"]);
    assert_eq!(w.node_states("fk-susp"), all(ObjState::Suspended));
    // One consistent cut: every pause before any save.
    let changes = w.hv.changes()[before..].to_vec();
    let last_pause = changes
        .iter()
        .rposition(|c| c.starts_with("pause domain"))
        .expect("pauses");
    let first_save = changes
        .iter()
        .position(|c| c.starts_with("save domain"))
        .expect("saves");
    assert!(last_pause < first_save, "{changes:?}");
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.starts_with("save domain"))
            .count(),
        3
    );
    let rows =
        w.rt.block_on(crate::ops::status::list(&w.ctx))
            .expect("list");
    assert_eq!((rows[0].running, rows[0].suspended), (0, 3));
    // Suspended again: nothing to do.
    let again = w.suspend("fk-susp").expect("suspend again");
    assert!(again.suspended.is_empty());
    assert_eq!(again.already.len(), 3);

    let r = w.resume("fk-susp").expect("resume");
    assert_eq!(r.resumed, ["boot", "master", "public"]);
    assert_eq!(w.node_states("fk-susp"), all(ObjState::Active));
    assert_eq!(r.clock_offsets.len(), 3);
    // Every node restored running (one step each, nothing run separately); the boot node's
    // clock first, then each node's random state renewed, as after a revert.
    let changes = w.hv.changes();
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.starts_with("start domain"))
            .count(),
        3 + 3,
        "the first up's starts and the restores: {changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.starts_with("resume domain")),
        "{changes:?}"
    );
    let clock = |node: &str| position(&w, node, "date -u -s").expect("clock set");
    assert!(clock("boot") < clock("master") && clock("boot") < clock("public"));
    for node in ["boot", "master", "public"] {
        assert!(position(&w, node, "RNDRESEEDCRNG").is_some(), "{node}");
    }
    // Not suspended: nothing to do.
    assert!(
        w.resume("fk-susp")
            .expect("resume again")
            .resumed
            .is_empty()
    );
}

#[test]
fn a_suspended_lab_refuses_a_snapshot_and_revert_and_up_bring_it_back() {
    let w = world();
    let l = lab_on_disk(&w, "fk-susp2");
    let w = w.with_image(&l);
    w.up(&l).expect("up");
    w.snapshot("fk-susp2", "s1").expect("snapshot");
    w.suspend("fk-susp2").expect("suspend");
    let before = w.hv.changes();
    let e = w.snapshot("fk-susp2", "s2").expect_err("refused");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("dcos-lab resume fk-susp2"),
        "{e:#}"
    );
    assert_eq!(w.hv.changes(), before);
    // Its snapshot can be exported (the disks hold it; no node runs to pause).
    let golden = w._dir.path().join("susp.golden");
    w.export(&l, "s1", &golden)
        .expect("export of a suspended lab");
    assert_eq!(w.node_states("fk-susp2"), all(ObjState::Suspended));
    assert!(golden.is_file());
    // A revert goes back to the snapshot: the saved memory is dropped, every node runs.
    w.revert("fk-susp2", Some("s1")).expect("revert");
    assert_eq!(w.node_states("fk-susp2"), all(ObjState::Active));
    // `up` of a suspended lab resumes it, clocks corrected.
    w.suspend("fk-susp2").expect("suspend");
    w.guests.ran.lock().expect("ran").clear();
    let r = w.up(&l).expect("up");
    assert!(
        r.actions.iter().any(|a| a.starts_with("resume")),
        "{:?}",
        r.actions
    );
    assert_eq!(w.node_states("fk-susp2"), all(ObjState::Active));
    assert!(position(&w, "master", "date -u -s").is_some());
    // `down` of a suspended lab leaves nothing.
    w.suspend("fk-susp2").expect("suspend");
    w.down("fk-susp2").expect("down");
    assert!(w.hv.objects().is_empty(), "{:?}", w.hv.objects());
}

#[test]
fn a_node_that_cannot_be_paused_leaves_the_lab_running_as_it_was() {
    let l = lab("fk-susp3");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.fail("pause domain dcos-lab-fk-susp3-public", 1);
    let e = w.suspend("fk-susp3").expect_err("cannot pause");
    assert!(format!("{e:#}").contains("was not suspended"), "{e:#}");
    assert_eq!(w.node_states("fk-susp3"), all(ObjState::Active));
}

/// `suspend` and `resume` killed after each of their steps: the next `resume` (or `up`) brings
/// the lab back running, and a `suspend` after it suspends every node.
#[test]
fn suspend_and_resume_killed_after_any_step_are_taken_over() {
    let l = lab("fk-ksusp");
    let probe = world().with_image(&l);
    probe.up(&l).expect("up");
    let before = probe.hv.changes().len();
    probe.suspend("fk-ksusp").expect("suspend");
    let suspend_steps = probe.hv.changes().len() - before;
    assert_eq!(suspend_steps, 6, "pause and save of 3 nodes");
    let before = probe.hv.changes().len();
    probe.resume("fk-ksusp").expect("resume");
    let resume_steps = probe.hv.changes().len() - before;
    assert_eq!(resume_steps, 3, "a restore, running, of each of 3 nodes");
    for n in 0..suspend_steps {
        let w = world().with_image(&l);
        w.up(&l).expect("up");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.suspend("fk-ksusp").is_err(), "suspend step {n}");
        w.hv.revive();
        w.resume("fk-ksusp").expect("resume takes over");
        assert_eq!(w.node_states("fk-ksusp"), all(ObjState::Active), "step {n}");
        w.suspend("fk-ksusp").expect("suspend again");
        assert_eq!(w.node_states("fk-ksusp"), all(ObjState::Suspended));
    }
    for n in 0..resume_steps {
        let w = world().with_image(&l);
        w.up(&l).expect("up");
        w.suspend("fk-ksusp").expect("suspend");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.resume("fk-ksusp").is_err(), "resume step {n}");
        w.hv.revive();
        w.up(&l).expect("up takes over");
        assert_eq!(w.node_states("fk-ksusp"), all(ObjState::Active), "step {n}");
    }
}

// ---- halt ----

impl World {
    fn halt(
        &self,
        lab: &str,
        nodes: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<crate::ops::lab::halt::HaltReport> {
        let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        self.run(crate::ops::lab::halt::halt(&self.ctx, lab, &nodes, timeout))
    }
}

fn outcomes(r: &crate::ops::lab::halt::HaltReport) -> Vec<(&str, &str)> {
    r.nodes
        .iter()
        .map(|n| (n.node.as_str(), n.outcome.as_str()))
        .collect()
}

#[test]
fn halt_shuts_every_node_down_cleanly_and_up_starts_them_again() {
    let l = lab("fk-halt");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let before = w.hv.changes().len();
    let r = w
        .halt("fk-halt", &[], Duration::from_secs(5))
        .expect("halt");
    assert_eq!(
        outcomes(&r),
        [
            ("boot", "shut down"),
            ("master", "shut down"),
            ("public", "shut down")
        ]
    );
    assert_eq!(w.node_states("fk-halt"), all(ObjState::Inactive));
    let changes = w.hv.changes()[before..].to_vec();
    assert!(
        changes.iter().all(|c| c.starts_with("shut down domain")),
        "nothing forced: {changes:?}"
    );
    // Halted again: nothing to do. Disks kept: `up` only starts the nodes.
    let again = w
        .halt("fk-halt", &[], Duration::from_secs(5))
        .expect("again");
    assert!(again.nodes.iter().all(|n| n.outcome == "already stopped"));
    let up = w.up(&l).expect("up");
    assert!(
        up.actions.iter().all(|a| a.starts_with("start domain")),
        "{:?}",
        up.actions
    );
    assert_eq!(w.node_states("fk-halt"), all(ObjState::Active));
}

#[test]
fn a_guest_that_ignores_the_power_button_is_forced_off_after_the_timeout() {
    let l = lab("fk-halt2");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.ignore_power_button("dcos-lab-fk-halt2-master");
    let r = w
        .halt("fk-halt2", &[], Duration::from_secs(1))
        .expect("halt");
    assert_eq!(
        outcomes(&r),
        [
            ("boot", "shut down"),
            ("master", "forced off after 1 s"),
            ("public", "shut down")
        ]
    );
    assert_eq!(w.node_states("fk-halt2"), all(ObjState::Inactive));
}

#[test]
fn halt_of_some_nodes_leaves_the_others_and_runs_a_paused_one_first() {
    let l = lab("fk-halt3");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.hv.suspend_domain("dcos-lab-fk-halt3-public")
        .expect("pause");
    let r = w
        .halt("fk-halt3", &["public"], Duration::from_secs(5))
        .expect("halt");
    assert_eq!(outcomes(&r), [("public", "shut down")]);
    let states = w.node_states("fk-halt3");
    assert_eq!(
        states,
        [
            ("boot".to_string(), ObjState::Active),
            ("master".to_string(), ObjState::Active),
            ("public".to_string(), ObjState::Inactive)
        ]
    );
    let before = w.hv.changes();
    let e = w
        .halt("fk-halt3", &["nope"], Duration::from_secs(5))
        .expect_err("no such node");
    assert!(bad_input(&e), "{e:#}");
    assert_eq!(w.hv.changes(), before);
    // A suspended node keeps its saved memory.
    w.suspend("fk-halt3").expect("suspend");
    let r = w
        .halt("fk-halt3", &[], Duration::from_secs(5))
        .expect("halt");
    assert_eq!(
        outcomes(&r),
        [
            ("boot", "suspended"),
            ("master", "suspended"),
            ("public", "already stopped")
        ]
    );
}

// ---- part of a lab ----

impl World {
    fn up_part(
        &self,
        lab: &Lab,
        nodes: &[&str],
        install: bool,
    ) -> anyhow::Result<crate::ops::up::UpOutcome> {
        let accel = crate::ops::decide_accel(lab, Some(AccelChoice::Tcg));
        let opts = crate::ops::up::UpOptions {
            wait: Duration::from_secs(30),
            install: install.then(|| crate::ops::lab::dcos::InstallOptions {
                timeout: Duration::from_secs(5),
            }),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        };
        self.run(crate::ops::up::up_command(
            &self.ctx,
            lab,
            &lab.source,
            accel,
            &opts,
        ))
    }
}

#[test]
fn up_of_some_nodes_makes_only_them_and_a_later_up_adds_the_rest_unchanged() {
    let l = lab("fk-part");
    let w = world().with_image(&l);
    let r = w.up_part(&l, &["boot", "master"], false).expect("part");
    let names: Vec<&str> = r.up.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["boot", "master"]);
    assert!(w.hv.domain_state("dcos-lab-fk-part-public").is_none());
    // Both networks are whole: the rest needs no change to them.
    let before = w.hv.changes().len();
    let r = w.up(&l).expect("the rest");
    let changes = w.hv.changes()[before..].to_vec();
    assert!(
        changes
            .iter()
            .all(|c| !c.contains("network") && !c.contains("-boot") && !c.contains("-master")),
        "the networks and the first nodes untouched: {changes:?}"
    );
    assert!(!r.actions.is_empty());
    assert_eq!(w.node_states("fk-part"), all(ObjState::Active));
    // A node the lab file does not have is refused, nothing made.
    let w2 = world().with_image(&l);
    let e = w2.up_part(&l, &["nope"], false).expect_err("no such node");
    assert!(bad_input(&e), "{e:#}");
    assert!(w2.hv.objects().is_empty());
}

#[test]
fn on_a_dcos_lab_part_up_installs_what_is_there_and_a_later_up_installs_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let installer = dir.path().join("dcos_generate_config.sh");
    std::fs::write(&installer, b"#!/bin/sh\n").expect("installer");
    let l = dcos_lab("fk-partd", &installer);
    let w = world().with_image(&l);
    // Agents alone can never install: refused before anything is made.
    let e = w
        .up_part(&l, &["public"], true)
        .expect_err("no boot, no master");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("--node boot --node master"),
        "{e:#}"
    );
    assert!(w.hv.objects().is_empty());

    let r = w.up_part(&l, &["boot", "master"], true).expect("part");
    let install = r.install.expect("installed");
    let outcomes: Vec<(&str, &str)> = install
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("boot", "served"),
            ("master", "installed"),
            ("public", "not made yet")
        ]
    );
    let config = install.config;
    // The nodes now say what they did; the agent comes later and joins.
    w.guests.answer(answering_state(
        [
            ("boot".to_string(), format!("serving {config}")),
            ("master".to_string(), format!("installed {config} master")),
        ]
        .into(),
    ));
    w.guests.ran.lock().expect("ran").clear();
    let r = w.up_part(&l, &[], true).expect("the rest");
    let outcomes: Vec<String> = r
        .install
        .expect("installed")
        .nodes
        .iter()
        .map(|n| n.outcome.clone())
        .collect();
    assert_eq!(
        outcomes,
        ["already served", "already installed", "installed"]
    );
    assert!(position(&w, "master", "dcos_install.sh").is_none());
    assert!(position(&w, "public", "dcos_install.sh slave_public").is_some());
}

#[test]
fn a_revert_that_cannot_pause_a_node_leaves_the_lab_as_it_was_and_no_record() {
    let l = lab("fk-revp");
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    w.snapshot("fk-revp", "s1").expect("snapshot");
    w.hv.fail("pause domain dcos-lab-fk-revp-public", 1);
    let e = w.revert("fk-revp", Some("s1")).expect_err("cannot pause");
    assert!(
        format!("{e:#}").contains("revert of lab fk-revp did not start, the lab is as it was"),
        "{e:#}"
    );
    assert_eq!(w.node_states("fk-revp"), all(ObjState::Active));
    assert!(w.unfinished_revert("fk-revp").is_none());
}

// ---- scale out, scale in ----

/// A lab with an agent group in the middle of the file: raising its count adds agents before
/// the public agent in the file.
fn agents_lab(name: &str, agents: u32, masters: u32, dcos: bool) -> Lab {
    let text = format!(
        "name: {name}\nimage: debian-12\nnetworks:\n  private:\n    mode: isolated\n  public:\n    mode: nat\nnodes:\n  - {{name: boot, role: boot, memory: 256M, disk: 2G}}\n  - {{name: master, role: master, memory: 256M, disk: 2G, count: {masters}}}\n  - {{name: agent, role: agent-private, memory: 256M, disk: 2G, count: {agents}}}\n  - {{name: public, role: agent-public, memory: 256M, disk: 2G, networks: [private, public]}}\n{}",
        if dcos {
            "dcos:\n  cluster_name: t\n"
        } else {
            ""
        }
    );
    crate::model::parse(&text, &format!("{name}.yaml"), None, &["debian-12"]).expect("valid lab")
}

/// The private addresses of a lab's nodes as libvirt has them.
fn addresses(w: &World, lab: &str) -> Vec<(String, String)> {
    w.state(lab)
        .nodes
        .into_iter()
        .map(|n| {
            let ip = n.private_ipv4().map(|a| a.to_string()).unwrap_or_default();
            (n.name, ip)
        })
        .collect()
}

#[test]
fn an_agent_added_joins_the_running_lab_and_nothing_else_restarts() {
    let one = agents_lab("fk-scale", 1, 1, false);
    let two = agents_lab("fk-scale", 2, 1, false);
    let w = world().with_image(&one);
    w.up(&one).expect("up");
    let made = addresses(&w, "fk-scale");

    // `plan` shows only what is added; the running nodes are named as only checked.
    let hvs: std::collections::BTreeMap<String, &dyn Hypervisor> = [(
        crate::model::LOCAL_HOST.to_string(),
        &*w.hv as &dyn Hypervisor,
    )]
    .into();
    let accel = crate::ops::decide_accel(&two, Some(AccelChoice::Tcg));
    let p = crate::ops::plan::plan(&two, accel, &w.ctx.dirs, &hvs).expect("plan");
    let planned: Vec<String> = p.actions.iter().map(|a| a.action.describe()).collect();
    assert!(planned.iter().all(|a| a.contains("agent2")), "{planned:#?}");
    assert_eq!(
        planned.len(),
        6,
        "network entries, disk, seed, domain, start, wait: {planned:#?}"
    );
    assert_eq!(p.running, ["boot", "master1", "agent1", "public"]);

    let before = w.hv.changes().len();
    let r = w.up(&two).expect("scale out");
    let changes = w.hv.changes()[before..].to_vec();
    // Nothing that was there stopped, restarted or was defined again; no network restarted.
    for c in &changes {
        assert!(
            c.contains("agent2") || c.starts_with("refresh pool"),
            "a change to what was there: {c} (all: {changes:#?})"
        );
    }
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("add DHCP host agent2") && c.ends_with("-private")),
        "{changes:#?}"
    );
    assert!(
        r.actions.iter().all(|a| a.contains("agent2")),
        "{:#?}",
        r.actions
    );
    // Every node made keeps its address; the new agent takes the next one.
    let now = addresses(&w, "fk-scale");
    for (node, ip) in &made {
        assert!(
            now.contains(&(node.clone(), ip.clone())),
            "{node} moved: {now:?}"
        );
    }
    let public = made.iter().find(|(n, _)| n == "public").expect("public");
    let agent2 = now.iter().find(|(n, _)| n == "agent2").expect("agent2");
    let last = |ip: &str| ip.rsplit('.').next().and_then(|o| o.parse::<u8>().ok());
    assert_eq!(last(&agent2.1), last(&public.1).map(|o| o + 1), "{now:?}");
    // Every node made before has the new name in /etc/hosts; the new one has every name.
    for (node, _) in &made {
        let pushed = w.guests.inputs_on(node, "/etc/hosts");
        let last = pushed.last().expect("the lab's names were given to it");
        assert!(
            last.contains(&format!(
                "{} agent2.fk-scale.dcos-lab agent2.fk-scale agent2",
                agent2.1
            )),
            "{node}: {last}"
        );
    }
    // The network entries are the lab file's, once each.
    let entries =
        w.hv.network_entries("dcos-lab-fk-scale-private")
            .expect("entries");
    let plan = crate::plan::plan_addresses(
        &crate::ops::lab::indices::with_entries(&two, &entries).expect("indices"),
    );
    let mut want: Vec<_> = ["boot", "master1", "agent1", "agent2", "public"]
        .iter()
        .flat_map(|n| plan.entries(crate::model::NetKind::Private, n))
        .collect();
    let mut got = entries.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // Done: another `up` changes nothing.
    let before = w.hv.changes().len();
    w.up(&two).expect("again");
    assert_eq!(w.hv.changes().len(), before);
}

#[test]
fn a_master_added_to_a_lab_with_dcos_on_it_is_refused_and_nothing_changes() {
    let one = agents_lab("fk-newm", 1, 1, true);
    let three = agents_lab("fk-newm", 1, 3, true);
    let w = world().with_image(&one);
    w.up(&one).expect("up");
    // DC/OS is installed on the nodes (their install state says so).
    w.guests.answer(|node, command, input| {
        if command.contains("cat /var/lib/dcos-lab/install/state") {
            let role = if node == "boot" {
                "serving abc"
            } else {
                "installed abc master"
            };
            return crate::guest::Output {
                status: Some(0),
                stdout: role.as_bytes().to_vec(),
                stderr: Vec::new(),
            };
        }
        crate::driver::fake::echo(node, command, input)
    });
    let before = w.hv.changes();
    let e = w.up(&three).expect_err("masters added to an installed lab");
    assert!(bad_input(&e), "{e:#}");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("master2, master3") && msg.contains("fixes its masters at install"),
        "{msg}"
    );
    assert_eq!(w.hv.changes(), before, "a refused up changed the host");
    // Agents are welcome.
    w.up(&agents_lab("fk-newm", 2, 1, true))
        .expect("an agent added");
}

#[test]
fn a_scale_out_killed_after_any_step_is_taken_over_by_the_next_up() {
    let one = agents_lab("fk-kscale", 1, 1, false);
    let two = agents_lab("fk-kscale", 2, 1, false);
    let probe = world().with_image(&one);
    probe.up(&one).expect("up");
    let before = probe.hv.changes().len();
    probe.up(&two).expect("scale out");
    let steps = probe.hv.changes().len() - before;
    assert!(steps >= 5, "{steps}");
    let want = addresses(&probe, "fk-kscale");
    for n in 0..steps {
        let w = world().with_image(&one);
        w.up(&one).expect("up");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.up(&two).is_err(), "step {n}");
        w.hv.revive();
        w.up(&two).unwrap_or_else(|e| panic!("step {n}: {e:#}"));
        assert_eq!(addresses(&w, "fk-kscale"), want, "step {n}");
        let states: Vec<ObjState> = w
            .node_states("fk-kscale")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert!(
            states.iter().all(|s| *s == ObjState::Active),
            "step {n}: {states:?}"
        );
        let entries =
            w.hv.network_entries("dcos-lab-fk-kscale-private")
                .expect("entries");
        assert_eq!(entries.len(), 5 * 2, "step {n}: {entries:#?}");
    }
}

impl World {
    fn down_nodes(
        &self,
        lab: &str,
        nodes: &[&str],
    ) -> anyhow::Result<crate::ops::lab::removal::RemoveReport> {
        let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        self.run(crate::ops::down::down_nodes(&self.ctx, lab, &nodes))
    }
}

#[test]
fn an_agent_removed_goes_alone_and_the_lab_file_without_it_is_the_lab() {
    let one = agents_lab("fk-scalein", 1, 1, false);
    let two = agents_lab("fk-scalein", 2, 1, false);
    let w = world().with_image(&two);
    w.up(&two).expect("up");
    let made = addresses(&w, "fk-scalein");
    let pool_dir = w.ctx.dirs.lab("fk-scalein").pool();
    assert!(
        pool_dir
            .join(crate::names::disk_volume_name("agent2"))
            .exists()
    );
    let before = w.hv.changes().len();
    let r = w
        .down_nodes("fk-scalein", &["agent2"])
        .expect("down --node");
    let changes = w.hv.changes()[before..].to_vec();
    for c in &changes {
        assert!(
            c.contains("agent2"),
            "a change to another node: {c} (all: {changes:#?})"
        );
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // Its domain, disk, seed and entries are gone; every other node runs where it was.
    let now = addresses(&w, "fk-scalein");
    let mut want = made.clone();
    want.retain(|(n, _)| n != "agent2");
    assert_eq!(now, want);
    assert!(
        w.node_states("fk-scalein")
            .iter()
            .all(|(_, s)| *s == ObjState::Active)
    );
    for v in ["disk", "seed"] {
        let name = if v == "disk" {
            crate::names::disk_volume_name("agent2")
        } else {
            crate::names::seed_volume_name("agent2")
        };
        assert!(!pool_dir.join(&name).exists(), "{name} left");
    }
    for kind in ["private", "public"] {
        let entries =
            w.hv.network_entries(&format!("dcos-lab-fk-scalein-{kind}"))
                .expect("entries");
        assert!(
            entries.iter().all(|e| e.node() != Some("agent2")),
            "{kind}: {entries:?}"
        );
    }
    // The others no longer name it.
    for (node, _) in &want {
        let pushed = w.guests.inputs_on(node, "/etc/hosts");
        let last = pushed.last().expect("names given");
        assert!(
            !last.contains("agent2") && last.contains("agent1"),
            "{node}: {last}"
        );
    }
    // The lab file without it is the lab: `up` has nothing to do.
    let before = w.hv.changes().len();
    w.up(&one).expect("up of the smaller lab file");
    assert_eq!(w.hv.changes().len(), before);
    // The whole lab still goes with `down`.
    w.down("fk-scalein").expect("down");
    assert!(w.hv.objects().is_empty(), "{:?}", w.hv.objects());
}

#[test]
fn a_master_the_boot_node_or_an_unknown_node_is_refused_and_nothing_changes() {
    let l = agents_lab("fk-scalefix", 1, 1, false);
    let w = world().with_image(&l);
    w.up(&l).expect("up");
    let before = w.hv.changes();
    for (node, what) in [
        ("master1", "master"),
        ("boot", "boot node"),
        ("nope", "no node"),
    ] {
        let e = w
            .down_nodes("fk-scalefix", &["agent1", node])
            .expect_err(node);
        assert!(bad_input(&e), "{e:#}");
        let msg = format!("{e:#}");
        assert!(msg.contains(what), "{msg}");
        if what != "no node" {
            assert!(msg.contains("`dcos-lab down fk-scalefix`"), "{msg}");
        }
    }
    assert_eq!(
        w.hv.changes(),
        before,
        "a refused down --node changed the host"
    );
}

#[test]
fn a_down_node_killed_after_any_step_is_taken_over() {
    let one = agents_lab("fk-kdown", 1, 1, false);
    let two = agents_lab("fk-kdown", 2, 1, false);
    let probe = world().with_image(&two);
    probe.up(&two).expect("up");
    let before = probe.hv.changes().len();
    probe
        .down_nodes("fk-kdown", &["agent2"])
        .expect("down --node");
    let steps = probe.hv.changes().len() - before;
    assert!(steps >= 4, "{steps}");
    let want = addresses(&probe, "fk-kdown");
    for n in 0..steps {
        let w = world().with_image(&two);
        w.up(&two).expect("up");
        w.hv.die_after(u32::try_from(n).expect("small"));
        assert!(w.down_nodes("fk-kdown", &["agent2"]).is_err(), "step {n}");
        w.hv.revive();
        // `up` of the smaller file names the fix while something of agent2 is left; the fix
        // takes over.
        if let Err(e) = w.up(&one) {
            assert!(
                format!("{e:#}").contains("--node agent2"),
                "step {n}: {e:#}"
            );
            w.down_nodes("fk-kdown", &["agent2"])
                .unwrap_or_else(|e| panic!("step {n}: {e:#}"));
            w.up(&one).unwrap_or_else(|e| panic!("step {n}: {e:#}"));
        }
        assert_eq!(addresses(&w, "fk-kdown"), want, "step {n}");
        let pool_dir = w.ctx.dirs.lab("fk-kdown").pool();
        assert!(
            !pool_dir
                .join(crate::names::disk_volume_name("agent2"))
                .exists(),
            "step {n}"
        );
    }
}

#[test]
fn a_lab_whose_addresses_left_the_file_order_is_not_exported() {
    let one = agents_lab("fk-scalegold", 1, 1, false);
    let two = agents_lab("fk-scalegold", 2, 1, false);
    let w = world().with_image(&one);
    w.up(&one).expect("up");
    w.up(&two).expect("an agent added before the public one");
    w.snapshot("fk-scalegold", "s").expect("snapshot");
    let file = w.ctx.dirs.state.join("g.tar");
    let e = w.export(&two, "s", &file).expect_err("out of order");
    assert!(bad_input(&e), "{e:#}");
    assert!(
        format!("{e:#}").contains("node agent2 was made as node #4"),
        "{e:#}"
    );
    assert!(!file.exists());
}

#[test]
fn a_halt_killed_after_any_step_is_taken_over_by_the_next_halt_or_up() {
    let l = lab("fk-khalt");
    let probe = world().with_image(&l);
    probe.up(&l).expect("up");
    // One guest ignores the button: the halt also forces a node off.
    probe.hv.ignore_power_button("dcos-lab-fk-khalt-master");
    let before = probe.hv.changes().len();
    probe
        .halt("fk-khalt", &[], Duration::from_millis(300))
        .expect("halt");
    let steps = probe.hv.changes().len() - before;
    assert_eq!(steps, 4, "three asked, one forced");
    for n in 0..steps {
        for then_up in [false, true] {
            let w = world().with_image(&l);
            w.up(&l).expect("up");
            w.hv.ignore_power_button("dcos-lab-fk-khalt-master");
            w.hv.die_after(u32::try_from(n).expect("small"));
            assert!(
                w.halt("fk-khalt", &[], Duration::from_millis(300)).is_err(),
                "step {n}"
            );
            w.hv.revive();
            if then_up {
                w.up(&l).unwrap_or_else(|e| panic!("step {n}: {e:#}"));
                assert_eq!(w.node_states("fk-khalt"), all(ObjState::Active), "step {n}");
            } else {
                w.halt("fk-khalt", &[], Duration::from_millis(300))
                    .unwrap_or_else(|e| panic!("step {n}: {e:#}"));
                assert_eq!(
                    w.node_states("fk-khalt"),
                    all(ObjState::Inactive),
                    "step {n}"
                );
            }
        }
    }
}
