//! Ctrl-C against a command that changes the host, in a process of its own (the flag it sets is
//! the process's): once SIGINT has arrived no change starts, and `settle` waits for the one under
//! way. libvirt's in-memory test driver stands for the host (fast tier).

use std::sync::mpsc;
use std::time::Duration;

use dcos_lab::driver::{DriverError, Hypervisor, Libvirt};
use dcos_lab::interrupt;

const NET: &str = "<network><name>dltest-interrupt</name><bridge name='dltest-int0'/></network>";

#[test]
fn after_ctrl_c_no_change_starts_and_settle_waits_for_the_one_under_way() {
    // A change under way holds the gate: settle waits for it.
    let making = interrupt::gate().expect("no Ctrl-C yet");
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        interrupt::settle();
        tx.send(()).expect("send");
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "settle returned while a change was under way"
    );
    drop(making);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("settle returns once the change is made");
    waiter.join().expect("joins");

    // Ctrl-C: the process lives on (the command reports), and the driver makes no change.
    let hv = Libvirt::open(Some("test:///default")).expect("test driver");
    interrupt::watch();
    assert!(!interrupt::pressed());
    // SAFETY: raise() has no memory-safety preconditions.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    assert!(interrupt::pressed());
    assert!(interrupt::gate().is_none());
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
    interrupt::settle();
}
