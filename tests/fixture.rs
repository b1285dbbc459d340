//! The test fixture installer (tests/fixtures/dcos_generate_config.fixture.sh) honours the genconf
//! contract of DC/OS's installer; run on the host, it needs python3-yaml and xz (setup-host.sh).

mod common;

use std::path::Path;
use std::process::Command;

fn genconf(dir: &Path, config: &str) -> std::process::Output {
    std::fs::create_dir_all(dir.join("genconf")).expect("genconf");
    std::fs::write(dir.join("genconf/config.yaml"), config).expect("config");
    std::fs::write(dir.join("genconf/ip-detect"), "#!/bin/sh\necho 10.0.0.1\n").expect("ip-detect");
    Command::new("bash")
        .arg(common::repo().join("tests/fixtures/dcos_generate_config.fixture.sh"))
        .current_dir(dir)
        .output()
        .expect("runs")
}

/// A config the nodes of a lab would get: every key DC/OS's genconf cannot do without.
const GOOD: &str = "bootstrap_url: http://10.0.0.1:4040\ncluster_name: t\nmaster_discovery: static\nexhibitor_storage_backend: static\nmaster_list: [10.0.0.2]\nresolvers: [10.0.0.1]\n";

#[test]
fn refuses_what_dcos_genconf_refuses_before_anything_is_written() {
    for (config, says) in [
        (
            GOOD.replace("bootstrap_url: http://10.0.0.1:4040\n", ""),
            "has no bootstrap_url",
        ),
        (
            GOOD.replace("master_list: [10.0.0.2]\n", ""),
            "has no master_list",
        ),
        (GOOD.replace("cluster_name: t\n", ""), "has no cluster_name"),
        (
            GOOD.replace("[10.0.0.2]", "[10.0.0.2, master.lab]"),
            "Invalid IPv4 addresses in list: master.lab",
        ),
        (
            GOOD.replace("resolvers: [10.0.0.1]", "resolvers: [8.8.8.8, dns]"),
            "resolvers: Invalid IPv4",
        ),
        (
            GOOD.replace("http://10.0.0.1:4040", "http://10.0.0.1:4040/"),
            "must not end in a '/'",
        ),
        (
            GOOD.replace("http://10.0.0.1:4040", "10.0.0.1:4040"),
            "should be a URL",
        ),
        (
            format!("{GOOD}check_time: maybe\n"),
            "check_time: must be 'true' or 'false'",
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let out = genconf(dir.path(), &config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}: {err}");
        assert!(err.contains(says), "{config}: expected {says:?} in {err}");
        assert!(!dir.path().join("genconf/serve/dcos_install.sh").exists());
    }
}

/// The real installer runs its genconf in a Docker container; so does the fixture. This host
/// runs no Docker engine (the nodes of a `dcos:` lab do): genconf must refuse, naming Docker.
/// On a host where Docker does run, it must work.
#[test]
fn genconf_needs_a_running_docker_as_the_real_one_does() {
    let docker_runs = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    let dir = tempfile::tempdir().expect("dir");
    let out = genconf(dir.path(), GOOD);
    let err = String::from_utf8_lossy(&out.stderr);
    if docker_runs {
        assert!(out.status.success(), "{err}");
        assert!(dir.path().join("genconf/serve/dcos_install.sh").exists());
    } else {
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("Docker is not"), "{err}");
        assert!(!dir.path().join("genconf/serve").exists());
    }
}
