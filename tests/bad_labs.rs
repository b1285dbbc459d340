//! Every file in tests/bad-labs/ is refused with exactly the message in its `.err` file,
//! naming the file, the line and column, the field and the fix.

mod common;

use dcos_lab::model::{self, LabSource};

#[test]
fn every_bad_lab_file_is_refused_with_its_expected_message() {
    let dir = common::repo().join("tests/bad-labs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/bad-labs")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "only {} bad lab files", files.len());
    for path in files {
        // Named relative to the repository, as a user running from its root would see it.
        let rel = path.strip_prefix(common::repo()).expect("inside repo");
        let source = LabSource::File(rel.to_path_buf());
        let prev = std::env::current_dir().expect("cwd");
        assert_eq!(prev, common::repo(), "tests run from the repository root");
        let err = model::load(&source, &["debian-12"])
            .expect_err(&format!("{} should be refused", rel.display()));
        let text = format!("{err}\n");
        common::assert_golden(&path.with_extension("err"), &text);
        assert!(
            text.contains(&format!("{}:", rel.display())) && text.contains("fix: "),
            "{text}"
        );
    }
}

#[test]
fn builtin_labs_are_valid() {
    for (name, _) in model::BUILTIN_LABS {
        let lab = model::load(&LabSource::find(name).expect("builtin"), &["debian-12"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&lab.name, name);
    }
}

#[test]
fn builtin_layouts_are_as_documented() {
    use dcos_lab::model::{ByteSize, NetKind, Role};
    let load = |n: &str| {
        model::load(&LabSource::find(n).expect("builtin"), &["debian-12"]).expect("valid")
    };
    let minimal = load("minimal");
    let roles: Vec<_> = minimal
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role, n.memory))
        .collect();
    assert_eq!(
        roles,
        [
            ("boot", Role::Boot, ByteSize::mib(512)),
            ("master", Role::Master, ByteSize::gib(1)),
            ("public", Role::AgentPublic, ByteSize::gib(1)),
        ]
    );
    for n in &minimal.nodes {
        assert!(n.on(NetKind::Private));
        assert_eq!(
            n.on(NetKind::Public),
            n.role == Role::AgentPublic,
            "{}",
            n.name
        );
    }
    assert!(minimal.networks.public.ipv6.is_some());
    assert!(minimal.networks.private.ipv6.is_none());

    let count =
        |lab: &dcos_lab::model::Lab, r: Role| lab.nodes.iter().filter(|n| n.role == r).count();
    let standard = load("standard");
    assert_eq!(
        [
            Role::Boot,
            Role::Master,
            Role::AgentPrivate,
            Role::AgentPublic
        ]
        .map(|r| count(&standard, r)),
        [1, 1, 1, 1]
    );
    let ha = load("ha");
    assert_eq!(
        [
            Role::Boot,
            Role::Master,
            Role::AgentPrivate,
            Role::AgentPublic
        ]
        .map(|r| count(&ha, r)),
        [1, 3, 2, 1]
    );
    let names: Vec<_> = ha.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["boot", "m1", "m2", "m3", "a1", "a2", "public"]);
}

#[test]
fn unknown_lab_name_says_what_exists() {
    let err = LabSource::find("nosuchlab").expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "no lab \"nosuchlab\": it is not a built-in lab (minimal, standard, ha) and no file nosuchlab exists\n  fix: name a built-in lab or give the path of a lab file"
    );
}
