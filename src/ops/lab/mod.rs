//! The core under the commands: what more than one command does to a lab [I/O].
//!
//! Each `ops/<command>.rs` calls down into these modules and never into a sibling command;
//! these modules call only each other and the layers below (`driver`, `guest`, `plan`, `render`).
//!
//! - `state`: what a lab is, read from libvirt across its hosts (`read`, `existing`).
//! - `observe`: what libvirt has of a lab on one host, for planning.
//! - `indices`: the node indices (MACs, addresses) a made lab holds, over the lab file's order.
//! - `hosts`: a lab's other hosts reached; each host's share of a lab.
//! - `nodes`: choosing nodes and running commands on them through `ctx.guests`.
//! - `storage`: pools and directories; `host_names`: the lab's names in the host's hosts file.
//! - `making`: the base image and the nodes' seeds.
//! - `snapshots`: take, list, remove and revert a lab's snapshots.
//! - `suspension`: suspend a lab (memory to disk, no QEMU left) and resume it as it was.
//! - `halt`: nodes powered off cleanly (forced after a bounded wait), disks kept.
//! - `teardown`: remove everything a lab owns; `removal`: agents removed from a lab alone.
//! - `dcos`: install DC/OS on a running lab; each node's install state.
//! - `clocks`: nodes' clocks and random state renewed after a revert or a resume.
//! - `ctrl_c`: run an operation until Ctrl-C, with the error that says what is left.

pub mod clocks;
pub mod ctrl_c;
pub mod dcos;
pub mod halt;
pub mod host_names;
pub mod hosts;
pub mod indices;
pub mod making;
pub mod nodes;
pub mod observe;
pub mod removal;
pub mod snapshots;
pub mod state;
pub mod storage;
pub mod suspension;
pub mod teardown;
