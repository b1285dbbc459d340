//! Ctrl-C against a command that changes the host, in a process of its own (the flag it sets is
//! the process's): once SIGINT has arrived no change starts, and `settle` waits for the one under
//! way, or names it when it takes too long. libvirt's in-memory test driver stands for the host
//! (fast tier).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use dcos_lab::driver::{DriverError, Hypervisor, Libvirt};
use dcos_lab::interrupt;

const NET: &str = "<network><name>dltest-interrupt</name><bridge name='dltest-int0'/></network>";

#[test]
fn after_ctrl_c_no_change_starts_and_settle_waits_for_the_one_under_way() {
    // A change under way: settle waits for it, and returns once it is made.
    let making = interrupt::gate("define network a").expect("no Ctrl-C yet");
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tx.send(interrupt::settle(Duration::from_secs(30)))
            .expect("send");
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "settle returned while a change was under way"
    );
    drop(making);
    let left = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("settle returns once the change is made");
    assert!(left.is_empty(), "{left:?}");
    waiter.join().expect("joins");

    // One that outlasts the limit is named, not waited for.
    let slow = interrupt::gate("start domain b").expect("no Ctrl-C yet");
    let t = Instant::now();
    assert_eq!(
        interrupt::settle(Duration::from_millis(200)),
        ["start domain b"]
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(slow);

    // Ctrl-C: the process lives on (the command reports), and the driver makes no change.
    let hv = Libvirt::open(Some("test:///default")).expect("test driver");
    interrupt::watch();
    assert!(!interrupt::pressed());
    // SAFETY: raise() has no memory-safety preconditions.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    assert!(interrupt::pressed());
    assert!(interrupt::gate("anything").is_none());
    match hv.define_network(NET) {
        Err(DriverError::Interrupted { what }) => assert!(what.contains("network"), "{what}"),
        other => panic!("a change was made after Ctrl-C: {other:?}"),
    }
    assert!(
        !hv.all_networks()
            .expect("list")
            .iter()
            .any(|n| n.name == "dltest-interrupt"),
        "the network was defined after Ctrl-C"
    );
    // Reading still works, and settle has nothing to wait for.
    assert!(interrupt::settle(Duration::from_secs(1)).is_empty());
}
