//! A node's NoCloud seed: user-data (cloud-config), meta-data and network-config (v2) [pure].
//!
//! The same user-data serves imported cloud images, our own images, and a cloud provider's
//! `user_data` (`dcos-lab render cloud-init LAB NODE`).

use std::fmt::Write as _;

use serde::Serialize;
use serde_saphyr::LitString;

use crate::model::{Hardening, Lab, NetKind, Role};
use crate::names::PREFIX;
use crate::plan::AddressPlan;

use super::RenderError;

/// Where the hardening script lands in the guest.
pub const HARDEN_PATH: &str = "/usr/local/sbin/dcos-lab-harden";
/// Written when first-boot configuration is complete; `up` waits for it, not just for sshd.
pub const READY_MARKER: &str = "/var/lib/dcos-lab/ready";

/// The three files of a NoCloud seed, and the same configuration as one shell script for
/// dcos-lab's fast first boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub user_data: String,
    pub meta_data: String,
    pub network_config: String,
    /// [`FIRSTBOOT_FILE`]: what the image's fast first boot runs (images/firstboot-early.sh
    /// sources it; no Python to start on a cold page cache, ~10 s of a node's boot under
    /// emulation). It does what cloud-init does with the three files above, for what they hold:
    /// hostname, write_files, the network as systemd-networkd files, runcmd kept for the final
    /// unit. cloud-init ignores it.
    pub firstboot: String,
}

/// The fast first boot's script, beside the NoCloud files on the seed.
pub const FIRSTBOOT_FILE: &str = "dcos-lab-firstboot.sh";

#[derive(Serialize)]
struct WriteFile {
    path: String,
    permissions: String,
    owner: String,
    content: LitString,
}

#[derive(Serialize)]
struct NtpOff {
    enabled: bool,
}

#[derive(Serialize)]
struct CloudConfig {
    hostname: String,
    fqdn: String,
    prefer_fqdn_over_hostname: bool,
    manage_etc_hosts: bool,
    /// No default user: the lab logs in as root with its own key.
    users: Vec<String>,
    disable_root: bool,
    ssh_pwauth: bool,
    ssh_deletekeys: bool,
    locale: bool,
    package_update: bool,
    package_upgrade: bool,
    ntp: NtpOff,
    write_files: Vec<WriteFile>,
    runcmd: Vec<Vec<String>>,
}

fn file(path: &str, mode: &str, content: String) -> WriteFile {
    WriteFile {
        path: path.into(),
        permissions: mode.into(),
        owner: "root:root".into(),
        content: LitString(content),
    }
}

/// `/etc/hosts` naming every node of the lab by its private address (and IPv6 where it has one):
/// `<node>.<lab>.dcos-lab`, `<node>.<lab>` (the name the host knows it by) and `<node>`.
pub fn etc_hosts(lab: &Lab, plan: &AddressPlan) -> String {
    etc_hosts_of(&lab.name, crate::plan::node_names(plan))
}

/// [`etc_hosts`] of lab `lab`'s nodes (name, private IPv4, IPv6), in address order.
pub fn etc_hosts_of(lab: &str, mut nodes: Vec<crate::plan::NodeName>) -> String {
    nodes.sort_by_key(|n| n.ipv4);
    let mut out = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for n in &nodes {
        let fqdn = format!("{}.{lab}.{PREFIX}", n.node);
        let names = format!("{fqdn} {}.{lab} {}", n.node, n.node);
        let _ = writeln!(out, "{} {names}", n.ipv4);
        if let Some(ip6) = n.ipv6 {
            let _ = writeln!(out, "{ip6} {names}");
        }
    }
    out
}

/// The hardening script of the cloud install path, for one profile. Idempotent: run again, it
/// changes nothing that is already right (the swap file is made once, the fstab lines once).
pub fn harden_script(h: &Hardening) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# dcos-lab hardening: the fixes the cloud install path applies before a DC/OS install.\nset -eu\n",
    );
    match h.tmp_size {
        Some(size) => {
            let opts = format!(
                "size={},mode=1777,nosuid,nodev",
                size.as_mib().to_string() + "M"
            );
            // The size holds on every boot through a drop-in for tmp.mount (systemd's /tmp, or
            // the unit systemd makes from an fstab line); where the image has neither, and when
            // `persistent` asks for it, an fstab line as well.
            let _ = write!(
                s,
                "\n# /tmp: a tmpfs large enough for the ~600 MB bootstrap download, on every boot.\n\
                 if findmnt -n -t tmpfs /tmp >/dev/null; then\n  mount -o remount,{opts} /tmp\nelse\n  mount -t tmpfs -o {opts} tmpfs /tmp\nfi\n\
                 mkdir -p /etc/systemd/system/tmp.mount.d\n\
                 printf '[Mount]\\nOptions={opts}\\n' > /etc/systemd/system/tmp.mount.d/90-dcos-lab.conf\n"
            );
            let fstab = "sed -i '\\|^tmpfs /tmp |d' /etc/fstab\necho 'tmpfs /tmp tmpfs "
                .to_string()
                + &opts
                + " 0 0' >> /etc/fstab\n";
            if h.persistent {
                s.push_str(&fstab);
            } else {
                let _ = write!(
                    s,
                    "if ! grep -qs '^[^#]* /tmp ' /etc/fstab && [ ! -e /etc/systemd/system/tmp.mount ] && [ ! -e /lib/systemd/system/tmp.mount ] && [ ! -e /usr/lib/systemd/system/tmp.mount ]; then\n{}fi\n",
                    fstab
                        .lines()
                        .map(|l| format!("  {l}\n"))
                        .collect::<String>()
                );
            }
        }
        None => s.push_str("\n# /tmp: left at the guest's default.\n"),
    }
    match h.swap {
        Some(size) => {
            let _ = write!(
                s,
                "\n# Swap: a file, made once.\n\
                 if ! swapon --show=NAME --noheadings | grep -qx /swapfile; then\n  \
                 if [ ! -f /swapfile ]; then\n    fallocate -l {}M /swapfile.new\n    chmod 0600 /swapfile.new\n    mkswap /swapfile.new >/dev/null\n    mv /swapfile.new /swapfile\n  fi\n  \
                 swapon /swapfile\nfi\n\
                 grep -q '^/swapfile ' /etc/fstab || echo '/swapfile none swap sw 0 0' >> /etc/fstab\n",
                size.as_mib()
            );
        }
        None => s.push_str("\n# Swap: none.\n"),
    }
    let v6 = if h.ipv6 { 0 } else { 1 };
    let _ = write!(
        s,
        "\n# IPv6 {}.\n\
         printf 'net.ipv6.conf.all.disable_ipv6 = {v6}\\nnet.ipv6.conf.default.disable_ipv6 = {v6}\\n' > /etc/sysctl.d/90-dcos-lab-ipv6.conf\n\
         sysctl -q -p /etc/sysctl.d/90-dcos-lab-ipv6.conf\n",
        if h.ipv6 { "on" } else { "off" }
    );
    if !h.telemetry {
        // One `systemctl mask --now` for the units not masked yet: every systemctl call that
        // changes unit files reloads systemd, which takes seconds under software emulation.
        s.push_str(
            "\n# Telemetry off: nothing in the guest may phone home.\n\
             units=\"\"\n\
             for u in popularity-contest.timer apt-daily.timer apt-daily-upgrade.timer systemd-timesyncd.service; do\n  \
             case \"$(systemctl is-enabled \"$u\" 2>/dev/null || true)\" in\n    \
             masked|masked-runtime|not-found|\"\") ;;\n    \
             *) units=\"$units $u\" ;;\n  \
             esac\n\
             done\n\
             if [ -n \"$units\" ]; then systemctl mask --now $units >/dev/null 2>&1 || true; fi\n",
        );
    }
    s
}

/// Where the seed puts the node's chrony sources.
pub const CHRONY_CONF: &str = "/etc/chrony/conf.d/dcos-lab.conf";
/// Docker's units (in our image) start only where this file exists.
pub const DOCKER_MARKER: &str = "/etc/dcos-lab/docker";

/// chrony's part of the seed: the boot node serves its own clock to the private network
/// (`local stratum`: the lab needs no clock from outside), every other node follows the boot node.
/// Short polls: a reverted guest resumes with an old clock and must be back in sync in seconds.
pub fn chrony_conf(lab: &Lab, plan: &AddressPlan, node: &str) -> Result<String, RenderError> {
    let n = lab
        .node(node)
        .ok_or_else(|| RenderError::NoSuchNode { node: node.into() })?;
    let boot = super::genconf::boot_node(lab)?;
    if n.role == Role::Boot {
        Ok(format!(
            "# dcos-lab: the boot node is the lab's clock; it serves the private network only.\n\
             local stratum 8\n\
             allow {}\n",
            lab.network(NetKind::Private).cidr
        ))
    } else {
        let ip = plan
            .node(boot)
            .and_then(|a| a.private_ipv4())
            .ok_or(RenderError::Invariant(
                "the boot node is on the private network",
            ))?;
        Ok(format!(
            "# dcos-lab: follow the boot node ({}), the lab's clock; nothing outside the lab.\n\
             server {ip} iburst minpoll -2 maxpoll 2\n",
            boot
        ))
    }
}

/// What DC/OS's `check-time` (packages/check-time) asks of a node's kernel clock, which its
/// installer's preflight and its health checks run: `adjtimex` neither returns `TIME_ERROR` nor
/// carries `STA_UNSYNC`, and the estimated error is at most 100 ms. timedated's
/// `NTPSynchronized=yes` is weaker (no STA_UNSYNC, maximum error under 16 s): a chrony that has
/// just started or stepped the clock says yes while its estimate is still over 100 ms.
pub mod check_time {
    /// STA_UNSYNC in the kernel's clock status (include/uapi/linux/timex.h).
    pub const STA_UNSYNC: i64 = 0x0040;
    /// adjtimex's TIME_ERROR: the kernel holds the clock unsynchronised.
    pub const TIME_ERROR: i64 = 5;
    /// The largest estimated error check-time accepts, in microseconds.
    pub const MAX_ESTERROR_US: i64 = 100_000;

    /// Whether adjtimex's return code, status and estimated error (µs) pass.
    pub fn passes(rc: i64, status: i64, esterror_us: i64) -> bool {
        rc >= 0 && rc != TIME_ERROR && status & STA_UNSYNC == 0 && esterror_us <= MAX_ESTERROR_US
    }

    /// A shell command run in a node: exits 0 once the kernel's clock passes, trying every
    /// quarter second for up to `seconds` (0: once), or 3 if it never did (anything else is a
    /// failure to run it). One python3 process reads adjtimex (struct timex on x86_64:
    /// esterror at byte 32, status at 40); a node without python3 (an imported image) is not
    /// waited for (0), as one without chrony is not: `verify` reports what it cannot read.
    pub fn guest_wait(seconds: u32) -> String {
        format!(
            "{{ ! command -v python3 >/dev/null || python3 -I -S -c 'import ctypes, sys, time\n\
             b = ctypes.create_string_buffer(512); libc = ctypes.CDLL(None)\n\
             end = time.monotonic() + {seconds}\n\
             while True:\n \
             rc = libc.adjtimex(b); v = b.raw\n \
             ok = rc not in (-1, {TIME_ERROR}) and not int.from_bytes(v[40:44], \"little\") & {STA_UNSYNC} \
             and int.from_bytes(v[32:40], \"little\", signed=True) <= {MAX_ESTERROR_US}\n \
             if ok or time.monotonic() >= end: sys.exit(0 if ok else 3)\n \
             time.sleep(0.25)'; }}"
        )
    }
}

/// The shell test `up` waits for inside a node, beside SSH answering: first boot and its
/// hardening are done (the ready marker); on every node that follows the boot node the clock is
/// synchronised as DC/OS's check-time asks (timedated says so, and the kernel's estimated error
/// is within check-time's bound), and the boot node's chrony serves its local clock; on a
/// `dcos:` lab, Docker is running. Images without chrony (imported ones) are not waited for on
/// time: `verify` reports them.
pub fn ready_check(lab: &Lab, node: &str) -> String {
    let boot = lab.node(node).is_some_and(|n| n.role == Role::Boot);
    let clock = if boot {
        // 7F7F0101 is chrony's reference ID for its own local clock (`local stratum`).
        "chronyc -n tracking 2>/dev/null | grep -q '^Reference ID *: 7F7F0101'".to_string()
    } else {
        format!(
            "[ \"$(timedatectl show -p NTPSynchronized --value 2>/dev/null)\" = yes ] && {}",
            check_time::guest_wait(0)
        )
    };
    let mut s =
        format!("test -e {READY_MARKER} && {{ ! command -v chronyd >/dev/null || {clock}; }}");
    if lab.dcos.enabled {
        s.push_str(" && systemctl is-active --quiet docker.service");
    }
    s
}

/// Network config v2: static addresses on every NIC (matched by MAC), a default route only on
/// the public network, and the private gateway's dnsmasq as resolver.
fn network_config(lab: &Lab, plan: &AddressPlan, node: &str) -> Result<String, RenderError> {
    let addrs = plan.node(node).ok_or(RenderError::Invariant(
        "the address plan has every node of the lab",
    ))?;
    let mut s = String::from("version: 2\nethernets:\n");
    for nic in &addrs.nics {
        let net = plan.network(nic.net).ok_or(RenderError::Invariant(
            "the address plan has every network a node is on",
        ))?;
        let _ = write!(
            s,
            "  {kind}:\n    match:\n      macaddress: \"{mac}\"\n    dhcp4: false\n    dhcp6: false\n    accept-ra: false\n    addresses:\n      - {ip}/{p}\n",
            kind = nic.net,
            mac = nic.mac,
            ip = nic.ipv4,
            p = net.prefix4
        );
        if let (Some(ip6), Some(p6)) = (nic.ipv6, net.prefix6) {
            let _ = writeln!(s, "      - \"{ip6}/{p6}\"");
        }
        if nic.net == NetKind::Public {
            let _ = write!(
                s,
                "    routes:\n      - to: 0.0.0.0/0\n        via: {}\n",
                net.gateway4
            );
            if let (Some(_), Some(gw6)) = (nic.ipv6, net.gateway6) {
                let _ = write!(s, "      - to: \"::/0\"\n        via: \"{gw6}\"\n");
            }
        }
        if nic.net == NetKind::Private {
            let _ = write!(
                s,
                "    nameservers:\n      addresses: [{}]\n      search: [{}.{PREFIX}]\n",
                net.gateway4, lab.name
            );
        }
    }
    Ok(s)
}

/// The systemd-networkd files of `node` as (file name, content): [`network_config`] rendered for
/// systemd-networkd (a `[Match]` on the MAC, static addresses, the resolver and search domain on
/// the private NIC, the default routes on the public one).
fn networkd_files(
    lab: &Lab,
    plan: &AddressPlan,
    node: &str,
) -> Result<Vec<(String, String)>, RenderError> {
    let addrs = plan.node(node).ok_or(RenderError::Invariant(
        "the address plan has every node of the lab",
    ))?;
    let mut files = Vec::new();
    for nic in &addrs.nics {
        let net = plan.network(nic.net).ok_or(RenderError::Invariant(
            "the address plan has every network a node is on",
        ))?;
        let mut lines = vec![
            "[Match]".to_string(),
            format!("MACAddress={}", nic.mac),
            String::new(),
            "[Network]".into(),
            "LinkLocalAddressing=ipv6".into(),
            "DHCP=no".into(),
            "IPv6AcceptRA=no".into(),
            format!("Address={}/{}", nic.ipv4, net.prefix4),
        ];
        if let (Some(ip6), Some(p6)) = (nic.ipv6, net.prefix6) {
            lines.push(format!("Address={ip6}/{p6}"));
        }
        if nic.net == NetKind::Private {
            lines.push(format!("DNS={}", net.gateway4));
            lines.push(format!("Domains={}.{PREFIX}", lab.name));
        }
        if nic.net == NetKind::Public {
            let mut routes = vec![("0.0.0.0/0".to_string(), net.gateway4.to_string())];
            if let (Some(_), Some(gw6)) = (nic.ipv6, net.gateway6) {
                routes.push(("::/0".into(), gw6.to_string()));
            }
            for (to, via) in routes {
                lines.push(String::new());
                lines.push("[Route]".into());
                lines.push(format!("Destination={to}"));
                lines.push(format!("Gateway={via}"));
            }
        }
        files.push((
            format!("/etc/systemd/network/10-dcos-lab-{}.network", nic.net),
            lines.join("\n") + "\n",
        ));
    }
    Ok(files)
}

/// `s` as one shell word, quoted only where it must be (as Python's `shlex.quote`).
fn sh_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

/// The fast first boot as a POSIX shell script: the hostname, every `write_files` entry (its
/// exact bytes, its mode), the network files, and `runcmd` as `/var/lib/dcos-lab/runcmd.sh` for
/// the final unit, which runs it after sshd. Under emulation every program started on a cold
/// page cache costs a quarter of a second or more, so the script starts three (mkdir, rm,
/// chmod): files are written by the shell itself (a path replaced, not written through: `rm`
/// first, as a rename would), created with their mode by the umask, and only modes with execute
/// bits set by `chmod`.
fn firstboot_script(
    cfg: &CloudConfig,
    network: &[(String, String)],
) -> Result<String, RenderError> {
    const RUNCMD: &str = "/var/lib/dcos-lab/runcmd.sh";
    let mut runcmd = String::from("#!/bin/sh\nset -e\n");
    for cmd in &cfg.runcmd {
        runcmd.push_str(&cmd.iter().map(|a| sh_word(a)).collect::<Vec<_>>().join(" "));
        runcmd.push('\n');
    }
    // (path, mode, owner, content): write_files in their order, the network, runcmd.
    let mut files: Vec<(&str, u32, &str, &str)> = Vec::new();
    for f in &cfg.write_files {
        let mode = u32::from_str_radix(&f.permissions, 8)
            .map_err(|_| RenderError::Invariant("write_files modes are octal numbers"))?;
        files.push((&f.path, mode, &f.owner, &f.content.0));
    }
    for (path, content) in network {
        files.push((path, 0o644, "root:root", content));
    }
    files.push((RUNCMD, 0o700, "root:root", &runcmd));

    let mut s = String::from(
        "#!/bin/sh\n# dcos-lab fast first boot, early stage (written by dcos-lab with this seed's user-data and\n\
         # network-config; cloud-init ignores it). Run by the image's dcos-lab-firstboot.service.\n\
         set -eu\n",
    );
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|f| f.0.rsplit_once('/').map(|(d, _)| d))
        .filter(|d| !d.is_empty())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    let words = |v: &mut dyn Iterator<Item = &str>| v.map(sh_word).collect::<Vec<_>>().join(" ");
    let _ = writeln!(s, "mkdir -p {}", words(&mut dirs.iter().copied()));
    let _ = writeln!(s, "rm -f {}", words(&mut files.iter().map(|f| f.0)));
    let _ = writeln!(
        s,
        "umask 022\nprintf '%s\\n' {h} > /etc/hostname\nprintf '%s' {h} > /proc/sys/kernel/hostname",
        h = sh_word(&cfg.hostname)
    );
    let mut chmods: Vec<(u32, Vec<&str>)> = Vec::new();
    for (path, mode, owner, content) in &files {
        // Created as 0666 less the umask: the mode itself, but for execute bits.
        let _ = writeln!(
            s,
            "umask {:04o}; printf '%s' {} > {}",
            !mode & 0o777,
            sh_word(content),
            sh_word(path)
        );
        if mode & 0o111 != 0 {
            match chmods.iter_mut().find(|c| c.0 == *mode) {
                Some(c) => c.1.push(path),
                None => chmods.push((*mode, vec![path])),
            }
        }
        if *owner != "root:root" {
            let _ = writeln!(s, "chown {} {}", sh_word(owner), sh_word(path));
        }
    }
    for (mode, paths) in chmods {
        let _ = writeln!(s, "chmod {mode:04o} {}", words(&mut paths.into_iter()));
    }
    s.push_str("umask 022\n");
    Ok(s)
}

/// The seed of `node`, logging in as root with `ssh_public_key`.
pub fn seed(
    lab: &Lab,
    plan: &AddressPlan,
    node: &str,
    ssh_public_key: &str,
) -> Result<Seed, RenderError> {
    let n = lab
        .node(node)
        .ok_or_else(|| RenderError::NoSuchNode { node: node.into() })?;
    let gw = plan
        .network(NetKind::Private)
        .map(|p| p.gateway4.to_string())
        .unwrap_or_default();
    let fqdn = format!("{node}.{}.{PREFIX}", lab.name);
    let cfg = CloudConfig {
        hostname: node.to_string(),
        fqdn: fqdn.clone(),
        prefer_fqdn_over_hostname: false,
        manage_etc_hosts: false,
        users: Vec::new(),
        disable_root: false,
        ssh_pwauth: false,
        ssh_deletekeys: false,
        locale: false,
        package_update: false,
        package_upgrade: false,
        ntp: NtpOff { enabled: false },
        write_files: vec![
            file(
                "/root/.ssh/authorized_keys",
                "0600",
                format!("{}\n", ssh_public_key.trim()),
            ),
            file("/etc/hosts", "0644", etc_hosts(lab, plan)),
            file(
                "/etc/resolv.conf",
                "0644",
                format!("nameserver {gw}\nsearch {}.{PREFIX}\n", lab.name),
            ),
            file(HARDEN_PATH, "0755", harden_script(&n.hardening)),
            file(CHRONY_CONF, "0644", chrony_conf(lab, plan, node)?),
        ],
        // One command: the ready marker exists only when the hardening succeeded (cloud-init
        // runs runcmd lines one after another whatever each returns), and only once the
        // hardening is on disk: a node forced off right after `up` (destroy, a host crash) must
        // come back with its fstab swap line and swap file, not with what the page cache lost.
        runcmd: vec![vec![
            "sh".into(),
            "-c".into(),
            format!(
                "{HARDEN_PATH} && mkdir -p /var/lib/dcos-lab && sync && date -u +%FT%TZ > {READY_MARKER} && sync"
            ),
        ]],
    };
    let mut cfg = cfg;
    if lab.dcos.enabled {
        cfg.write_files.push(file(
            DOCKER_MARKER,
            "0644",
            "# dcos-lab: this lab installs DC/OS; Docker runs here.\n".into(),
        ));
    }
    let body = serde_saphyr::to_string(&cfg).map_err(|e| RenderError::Yaml {
        what: format!("user-data of {node}"),
        message: e.to_string(),
    })?;
    let firstboot = firstboot_script(&cfg, &networkd_files(lab, plan, node)?)?;
    Ok(Seed {
        user_data: format!("#cloud-config\n{body}"),
        meta_data: format!(
            "instance-id: {}\nlocal-hostname: {node}\n",
            crate::names::domain_name(&lab.name, node)
        ),
        network_config: network_config(lab, plan, node)?,
        firstboot,
    })
}

#[cfg(test)]
mod tests {
    use super::check_time;

    /// The fast first boot writes a file's exact bytes: whatever the content (quotes, `%`,
    /// backslashes, no final newline), `printf '%s' WORD` in a POSIX shell gives it back.
    #[test]
    fn first_boot_words_keep_every_byte() {
        for content in [
            "plain\n",
            "it's 'quoted' and \"double\"\n",
            "100% \\n not an escape, $HOME not expanded, `no` $(command)",
            "no newline at the end",
            "",
            "tabs\tand\n\nblank lines\n",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", super::sh_word(content)))
                .output()
                .expect("sh");
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stdout), content, "{content:?}");
        }
    }

    /// The script writes every file of the seed's user-data and network, with its mode, and
    /// runcmd for the final unit; it is valid shell.
    #[test]
    fn first_boot_script_writes_the_seeds_files() {
        let lab = crate::model::parse(
            crate::model::BUILTIN_LABS[0].1,
            "minimal",
            None,
            &["debian-12"],
        )
        .expect("valid");
        let plan = crate::plan::plan_addresses(&lab);
        let seed = super::seed(&lab, &plan, "public", "ssh-ed25519 AAAA test").expect("seed");
        let s = &seed.firstboot;
        for (path, mode) in [
            ("/root/.ssh/authorized_keys", "umask 0177;"),
            ("/etc/hosts", "umask 0133;"),
            ("/etc/resolv.conf", "umask 0133;"),
            (super::HARDEN_PATH, "umask 0022;"),
            (
                "/etc/systemd/network/10-dcos-lab-private.network",
                "umask 0133;",
            ),
            (
                "/etc/systemd/network/10-dcos-lab-public.network",
                "umask 0133;",
            ),
            ("/var/lib/dcos-lab/runcmd.sh", "umask 0077;"),
        ] {
            // The file's printf ends with `' > PATH`; the umask it was created under is the
            // last one before it.
            let end = s
                .find(&format!("' > {path}\n"))
                .unwrap_or_else(|| panic!("{path} is not written:\n{s}"));
            let umask = s[..end].rfind("umask ").expect("a umask");
            assert!(
                s[umask..].starts_with(mode),
                "{path} not under {mode}:\n{s}"
            );
        }
        assert!(
            s.contains(&format!("chmod 0755 {}\n", super::HARDEN_PATH)),
            "{s}"
        );
        assert!(
            s.contains("chmod 0700 /var/lib/dcos-lab/runcmd.sh\n"),
            "{s}"
        );
        assert!(s.contains("Gateway="), "the public network's routes: {s}");
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", s])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn check_time_takes_what_dcos_check_time_takes() {
        assert!(check_time::passes(0, 0x2000, 100_000));
        assert!(!check_time::passes(0, 0x2000, 100_001), "over 100 ms");
        assert!(!check_time::passes(0, 0x2040, 0), "STA_UNSYNC");
        assert!(!check_time::passes(5, 0x2000, 0), "TIME_ERROR");
        assert!(!check_time::passes(-1, 0, 0), "adjtimex failed");
    }

    /// The guest's command is valid shell and Python: run here, on this host's kernel clock,
    /// it answers pass (0) or not yet (3), never a syntax or quoting error.
    #[test]
    fn the_guest_clock_check_runs() {
        let out = std::process::Command::new("sh")
            .args(["-c", &check_time::guest_wait(0)])
            .output()
            .expect("sh runs");
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // Without python3 there is nothing to read the clock with: not waited for.
        let none = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                &format!("{} && echo passed", check_time::guest_wait(5)),
            ])
            .env("PATH", "/nonexistent")
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&none.stdout), "passed\n");
    }
}
