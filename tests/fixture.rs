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

#[test]
fn refuses_a_config_without_bootstrap_url_or_master_list() {
    for (config, missing) in [
        ("master_list: [10.0.0.2]\n", "bootstrap_url"),
        ("bootstrap_url: http://10.0.0.1:4040\n", "master_list"),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let out = genconf(dir.path(), config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(&format!("has no {missing}")), "{err}");
        assert!(!dir.path().join("genconf/serve/dcos_install.sh").exists());
    }
}

#[test]
fn writes_dcos_install_sh_and_an_incompressible_xz_bootstrap_of_the_configured_size() {
    let dir = tempfile::tempdir().expect("dir");
    let out = genconf(
        dir.path(),
        "bootstrap_url: http://10.0.0.1:4040\nmaster_list: [10.0.0.2]\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let install = std::fs::read_to_string(dir.path().join("genconf/serve/dcos_install.sh"))
        .expect("dcos_install.sh");
    assert!(
        install.contains("BOOTSTRAP_URL=http://10.0.0.1:4040\n"),
        "{install}"
    );
    let tarballs: Vec<_> = std::fs::read_dir(dir.path().join("genconf/serve/bootstrap"))
        .expect("bootstrap dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".bootstrap.tar.xz"))
        .collect();
    assert_eq!(tarballs.len(), 1, "{tarballs:?}");
    let tarball = &tarballs[0];
    let size = std::fs::metadata(tarball).expect("size").len();
    assert!(size >= 16 << 20, "{size}");
    // A valid xz file holding a tar with the payload, the config and the health check.
    let listing = Command::new("tar")
        .arg("-tJf")
        .arg(tarball)
        .output()
        .expect("tar");
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let names = String::from_utf8_lossy(&listing.stdout);
    for n in [
        "payload.bin",
        "etc/user.config.yaml",
        "bin/dcos-check-runner",
    ] {
        assert!(names.lines().any(|l| l == n), "{names}");
    }
    // Incompressible: gzip cannot shrink it.
    let gz = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -1 -c '{}' | wc -c", tarball.display()))
        .output()
        .expect("gzip");
    let gz: u64 = String::from_utf8_lossy(&gz.stdout)
        .trim()
        .parse()
        .expect("size");
    assert!(
        gz as f64 > size as f64 * 0.99,
        "gzip made {size} bytes into {gz}"
    );
}
