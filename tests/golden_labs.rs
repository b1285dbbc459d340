//! Golden labs on real guests: `snapshot export`, `down`, `up --from` brings the lab back running
//! at the snapshot (files, processes, clocks, keys), each restore with its own random state;
//! damaged files and a name clash refused with nothing created.

mod common;

use std::time::Duration;

use common::TestLab;

const TWO_NODES: &str = "  - name: boot\n    role: boot\n    memory: 512M\n  - name: master\n    role: master\n    memory: 768M\n";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the master's /dev/urandom and the kernel's UUIDs give, right now.
fn random(lab: &TestLab) -> String {
    lab.sh(
        "master",
        "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /proc/sys/kernel/random/uuid",
    )
}

fn assert_clock(lab: &TestLab, node: &str) {
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    let guest: f64 = lab.sh(node, "date -u +%s.%N").trim().parse().expect("date");
    assert!(
        (guest - host).abs() < 2.0,
        "{node}: guest {guest} vs host {host}"
    );
}

#[test]
#[ignore = "system tier: libvirtd, root, real guests (scripts/test.sh runs it)"]
fn a_golden_lab_comes_back_running_and_each_restore_has_its_own_random_state() {
    let _vm = common::vm_lock();
    let lab = TestLab::new("gold", 67, TWO_NODES);
    let f = lab.file_arg();
    lab.run(&["up", &f]);
    lab.sh(
        "master",
        "echo golden > /root/marker; setsid nohup sleep 100000 >/dev/null 2>&1 </dev/null &",
    );
    let pid = lab
        .sh("master", "pgrep -f '[s]leep 100000'")
        .trim()
        .to_string();
    assert!(!pid.is_empty());
    lab.run(&["snapshot", &f, "gold"]);
    lab.sh("master", "echo later > /root/later");

    let file = lab.state.path().join("gold.golden");
    let out = lab.json(&[
        "snapshot",
        "export",
        &f,
        "gold",
        file.to_str().expect("path"),
        "--json",
    ]);
    assert!(out["bytes"].as_u64().unwrap_or(0) > 0, "{out}");
    // Exporting paused the nodes only while their disks were copied, and they run on.
    let st = lab.json(&["status", &f, "--json"]);
    for n in st["nodes"].as_array().expect("nodes") {
        assert_eq!(n["state"], "active", "{n}");
    }
    assert_eq!(lab.sh("master", "cat /root/later").trim(), "later");

    // A name clash: the lab still exists here.
    let out = lab
        .cmd()
        .args(["up", &f, "--from", file.to_str().expect("path")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exists on this host"),
        "{}",
        stderr(&out)
    );

    lab.run(&["down", &f]);
    assert_eq!(lab.leftovers(), Vec::<String>::new());

    // Damaged files are refused naming what is wrong, and nothing is made.
    let bytes = std::fs::read(&file).expect("read");
    let short = lab.state.path().join("short.golden");
    std::fs::write(&short, &bytes[..bytes.len() / 2]).expect("write");
    let flipped = lab.state.path().join("flipped.golden");
    let mut b = bytes.clone();
    let at = b.len() * 3 / 4;
    b[at] ^= 0xff;
    std::fs::write(&flipped, &b).expect("write");
    drop(b);
    for bad in [&short, &flipped] {
        let out = lab
            .cmd()
            .args(["up", &f, "--from", bad.to_str().expect("path")])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is not a usable golden lab") && stderr(&out).contains("member"),
            "{}",
            stderr(&out)
        );
        assert_eq!(lab.leftovers(), Vec::<String>::new());
        assert!(!lab.state.path().join("labs").join(&lab.name).exists());
    }
    std::fs::remove_file(&short).expect("rm");
    std::fs::remove_file(&flipped).expect("rm");

    // Restored twice from the one file: each time at the snapshot, running, clocks right, the
    // lab's own key and pinned host keys, and random state of its own.
    let mut randoms = Vec::new();
    for round in 0..2 {
        let up = lab.json(&["up", &f, "--from", file.to_str().expect("path"), "--json"]);
        assert_eq!(up["lab"], lab.name.as_str(), "{up}");
        randoms.push(random(&lab));
        assert_eq!(lab.sh("master", "cat /root/marker").trim(), "golden");
        assert_eq!(lab.sh("master", "pgrep -f '[s]leep 100000'").trim(), pid);
        assert_eq!(
            lab.sh("master", "ls /root/later 2>/dev/null | wc -l")
                .trim(),
            "0",
            "round {round}"
        );
        assert_clock(&lab, "boot");
        assert_clock(&lab, "master");
        let snaps = lab.json(&["snapshots", &f, "--json"]);
        assert_eq!(snaps[0]["name"], "gold", "{snaps}");
        assert_eq!(snaps[0]["complete"], true, "{snaps}");
        if round == 0 {
            lab.assert_verify_passes("after up --from");
            // It behaves as any lab: a revert to the restored snapshot works.
            lab.run(&["revert", &f, "gold"]);
        }
        lab.run(&["down", &f]);
        assert_eq!(lab.leftovers(), Vec::<String>::new());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (a, b) = (&randoms[0], &randoms[1]);
    assert_eq!(a.lines().count(), 2, "{a}");
    for (x, y) in a.lines().zip(b.lines()) {
        assert_ne!(
            x, y,
            "two restores of one golden gave the same random state"
        );
    }
}
