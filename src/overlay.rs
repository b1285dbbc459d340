//! The first host's side of a lab across hosts: each lab network's Linux bridge joined to its
//! VLAN on the Open vSwitch overlay bridge [I/O: OVSDB, the kernel].
//!
//! On every other host a lab network is a libvirt network on the overlay bridge (libvirt adds
//! the guests' ports itself). On the first host the network is libvirt's ordinary Linux bridge
//! (the host addresses, DHCP, DNS, NAT), and one port joins it to the overlay: an OVS internal
//! port, tagged with the network's VLAN, made by one OVSDB transaction and then put into the
//! Linux bridge (`SIOCBRADDIF`) and brought up. These ports are the only objects dcos-lab makes
//! outside libvirt; they are named after the bridge (`<bridge>x`), so `down` finds them by name.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where OVSDB listens (`DCOS_LAB_OVSDB` overrides: `unix:/path` or a path).
pub const OVSDB_ENV: &str = "DCOS_LAB_OVSDB";
const OVSDB_DEFAULT: &str = "/run/openvswitch/db.sock";

/// The overlay as `up` and `down` use it (the fast tests use `NoOverlay`).
pub trait Overlay: Send + Sync {
    /// Joins Linux bridge `bridge` to VLAN `vlan` on overlay bridge `overlay` (idempotent).
    fn link(&self, overlay: &str, bridge: &str, vlan: u16) -> anyhow::Result<()>;
    /// Removes the port joining `bridge` to the overlay, if there is one; true when removed.
    fn unlink(&self, bridge: &str) -> anyhow::Result<bool>;
}

/// The overlay port of a lab network's bridge (IFNAMSIZ allows 15 characters; ours are 13).
pub fn port_name(bridge: &str) -> String {
    format!("{bridge}x")
}

/// Open vSwitch on this host, reached over OVSDB's JSON-RPC.
pub struct Ovs {
    socket: String,
}

impl Ovs {
    pub fn from_env() -> Ovs {
        let socket = std::env::var(OVSDB_ENV).unwrap_or_else(|_| OVSDB_DEFAULT.to_string());
        Ovs {
            socket: socket.trim_start_matches("unix:").to_string(),
        }
    }

    /// One JSON-RPC call; the result, or the error OVSDB gave.
    fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let mut s = UnixStream::connect(&self.socket).map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Open vSwitch's database at {}: {e}\n  fix: install and start Open vSwitch on this host (docs/multihost.md), or set {OVSDB_ENV} to its socket",
                self.socket
            )
        })?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let req = json!({"method": method, "params": params, "id": 1});
        s.write_all(serde_json::to_string(&req)?.as_bytes())?;
        // OVSDB answers with one JSON object; it may send "echo" requests first.
        let mut r = BufReader::new(s.try_clone()?);
        let mut buf = Vec::new();
        loop {
            let chunk = r.fill_buf()?;
            if chunk.is_empty() {
                anyhow::bail!("Open vSwitch's database closed the connection");
            }
            buf.extend_from_slice(chunk);
            let n = chunk.len();
            r.consume(n);
            let mut de = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            match de.next() {
                Some(Ok(v)) => {
                    if v.get("method").and_then(Value::as_str) == Some("echo") {
                        let reply = json!({"result": v["params"], "error": null, "id": v["id"]});
                        s.write_all(serde_json::to_string(&reply)?.as_bytes())?;
                        buf.drain(..de.byte_offset());
                        continue;
                    }
                    if !v["error"].is_null() {
                        anyhow::bail!("Open vSwitch's database refused {method}: {}", v["error"]);
                    }
                    return Ok(v["result"].clone());
                }
                Some(Err(e)) if e.is_eof() => continue,
                Some(Err(e)) => anyhow::bail!("Open vSwitch's database answered nonsense: {e}"),
                None => continue,
            }
        }
    }

    /// A transaction; fails on the first operation OVSDB refused.
    fn transact(&self, ops: Vec<Value>) -> anyhow::Result<Vec<Value>> {
        let mut params = vec![json!("Open_vSwitch")];
        params.extend(ops);
        let res = self.call("transact", Value::Array(params))?;
        let rows = res.as_array().cloned().unwrap_or_default();
        if let Some(err) = rows.iter().find(|r| r.get("error").is_some()) {
            anyhow::bail!("Open vSwitch's database refused the change: {err}");
        }
        Ok(rows)
    }

    /// The `_uuid` of the port named `name`, if there is one.
    fn port_uuid(&self, name: &str) -> anyhow::Result<Option<String>> {
        let rows = self.transact(vec![json!({
            "op": "select", "table": "Port",
            "where": [["name", "==", name]], "columns": ["_uuid"]
        })])?;
        Ok(rows
            .first()
            .and_then(|r| r["rows"].as_array())
            .and_then(|rows| rows.first())
            .and_then(|row| row["_uuid"][1].as_str())
            .map(str::to_string))
    }
}

impl Overlay for Ovs {
    fn link(&self, overlay: &str, bridge: &str, vlan: u16) -> anyhow::Result<()> {
        let port = port_name(bridge);
        if self.port_uuid(&port)?.is_none() {
            let rows = self.transact(vec![
                json!({"op": "select", "table": "Bridge", "where": [["name", "==", overlay]], "columns": ["name"]}),
            ])?;
            let found = rows
                .first()
                .and_then(|r| r["rows"].as_array())
                .is_some_and(|r| !r.is_empty());
            if !found {
                anyhow::bail!(
                    "Open vSwitch on this host has no bridge {overlay}\n  fix: make it and its tunnels to the other hosts (docs/multihost.md: `ovs-vsctl add-br {overlay}`, one tunnel port per host)"
                );
            }
            self.transact(vec![
                json!({"op": "insert", "table": "Interface", "row": {"name": port, "type": "internal"}, "uuid-name": "i"}),
                json!({"op": "insert", "table": "Port", "row": {"name": port, "interfaces": ["named-uuid", "i"], "tag": vlan}, "uuid-name": "p"}),
                json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", overlay]],
                       "mutations": [["ports", "insert", ["set", [["named-uuid", "p"]]]]]}),
            ])?;
        }
        // ovs-vswitchd makes the device when it sees the new port.
        let t0 = Instant::now();
        let index = loop {
            match if_index(&port) {
                Some(i) => break i,
                None if t0.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                None => anyhow::bail!(
                    "Open vSwitch took port {port} but made no device for it in 10 s (is ovs-vswitchd running?)"
                ),
            }
        };
        bridge_add(bridge, index, &port)?;
        set_up(&port)?;
        Ok(())
    }

    fn unlink(&self, bridge: &str) -> anyhow::Result<bool> {
        let port = port_name(bridge);
        let Some(uuid) = self.port_uuid(&port)? else {
            return Ok(false);
        };
        self.transact(vec![json!({
            "op": "mutate", "table": "Bridge",
            "where": [],
            "mutations": [["ports", "delete", ["set", [["uuid", uuid]]]]]
        })])?;
        Ok(true)
    }
}

/// No overlay: the fast tests' hosts, which have no kernel to join.
pub struct NoOverlay;

impl Overlay for NoOverlay {
    fn link(&self, _: &str, _: &str, _: u16) -> anyhow::Result<()> {
        Ok(())
    }
    fn unlink(&self, _: &str) -> anyhow::Result<bool> {
        Ok(false)
    }
}

fn if_index(name: &str) -> Option<i32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string; the call reads it only.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then(|| i32::try_from(i).ok()).flatten()
}

/// `struct ifreq` as the two ioctls below use it: the name, then an int or short.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    value: libc::c_int,
    _pad: [u8; 20],
}

fn ifreq(name: &str) -> anyhow::Result<IfReq> {
    let mut r = IfReq {
        name: [0; libc::IFNAMSIZ],
        value: 0,
        _pad: [0; 20],
    };
    anyhow::ensure!(
        name.len() < libc::IFNAMSIZ,
        "interface name {name} is too long"
    );
    for (d, s) in r.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

fn ioctl(req: libc::c_ulong, r: &mut IfReq, what: &str) -> anyhow::Result<()> {
    // SAFETY: a socket of our own for the ioctl, closed below; `r` is a valid ifreq.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        anyhow::bail!("cannot {what}: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is the socket above; `r` is a valid, writable ifreq for the call's duration.
    let rc = unsafe { libc::ioctl(fd, req as _, r as *mut IfReq) };
    let err = std::io::Error::last_os_error();
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    if rc < 0 {
        anyhow::bail!("cannot {what}: {err}");
    }
    Ok(())
}

const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Puts device `index` into Linux bridge `bridge` (already there: fine).
fn bridge_add(bridge: &str, index: i32, port: &str) -> anyhow::Result<()> {
    let mut r = ifreq(bridge)?;
    r.value = index;
    match ioctl(
        SIOCBRADDIF,
        &mut r,
        &format!("put {port} into bridge {bridge}"),
    ) {
        Err(e)
            if e.to_string().contains("File exists") || e.to_string().contains("os error 16") =>
        {
            Ok(())
        }
        other => other,
    }
}

fn set_up(name: &str) -> anyhow::Result<()> {
    let mut r = ifreq(name)?;
    ioctl(
        libc::SIOCGIFFLAGS,
        &mut r,
        &format!("read the flags of {name}"),
    )?;
    r.value |= libc::IFF_UP;
    ioctl(libc::SIOCSIFFLAGS, &mut r, &format!("bring {name} up"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_fit_ifnamsiz() {
        for kind in [
            crate::model::NetKind::Private,
            crate::model::NetKind::Public,
        ] {
            let b = crate::plan::bridge_name(crate::model::LabId::of("any"), kind);
            let p = port_name(&b);
            assert!(p.len() < libc::IFNAMSIZ, "{p}");
            assert_ne!(p, b);
        }
    }
}
