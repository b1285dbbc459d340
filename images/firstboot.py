#!/usr/bin/python3
"""dcos-lab fast first boot: applies a node's NoCloud seed without cloud-init.

Reads the very same seed cloud-init would (user-data, meta-data, network-config on the `cidata`
volume) and does the same job for the subset dcos-lab renders: hostname, write_files, network
config v2 (rendered for systemd-networkd), runcmd. One Python process instead of cloud-init's four
stages: under software emulation that is seconds instead of tens of seconds.

Usage: firstboot.py early   (before networking: hostname, files, network; runcmd becomes
                             /var/lib/dcos-lab/runcmd.sh, which the final unit runs after sshd)
"""
import os
import shlex
import subprocess
import sys

import yaml

SEED_MOUNT = "/run/dcos-lab/seed"
STATE = "/var/lib/dcos-lab"
RUNCMD = "/var/lib/dcos-lab/runcmd.sh"


def seed_device():
    label = "/dev/disk/by-label/cidata"
    if os.path.exists(label):
        return label
    return "/dev/vdb"


def mount_seed():
    if os.path.ismount(SEED_MOUNT):
        return
    os.makedirs(SEED_MOUNT, exist_ok=True)
    subprocess.run(["mount", "-o", "ro", seed_device(), SEED_MOUNT], check=True)


def load(name):
    with open(os.path.join(SEED_MOUNT, name), encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}


def write_file(entry):
    path = entry["path"]
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    tmp = path + ".dcos-lab-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(entry.get("content", ""))
    os.chmod(tmp, int(str(entry.get("permissions", "0644")), 8))
    owner = entry.get("owner", "root:root")
    subprocess.run(["chown", owner, tmp], check=True)
    os.replace(tmp, path)


def networkd(config):
    lines_by_name = {}
    for name, eth in (config.get("ethernets") or {}).items():
        out = ["[Match]"]
        mac = (eth.get("match") or {}).get("macaddress")
        if mac:
            out.append(f"MACAddress={mac}")
        else:
            out.append(f"Name={name}")
        out += ["", "[Network]", "LinkLocalAddressing=ipv6"]
        out.append("DHCP=no" if not (eth.get("dhcp4") or eth.get("dhcp6")) else "DHCP=yes")
        out.append(f"IPv6AcceptRA={'yes' if eth.get('accept-ra') else 'no'}")
        for a in eth.get("addresses") or []:
            out.append(f"Address={a}")
        ns = eth.get("nameservers") or {}
        for d in ns.get("addresses") or []:
            out.append(f"DNS={d}")
        if ns.get("search"):
            out.append("Domains=" + " ".join(ns["search"]))
        for r in eth.get("routes") or []:
            out += ["", "[Route]", f"Destination={r['to']}", f"Gateway={r['via']}"]
        lines_by_name[name] = out
    os.makedirs("/etc/systemd/network", exist_ok=True)
    for name, out in lines_by_name.items():
        with open(f"/etc/systemd/network/10-dcos-lab-{name}.network", "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")


def early():
    mount_seed()
    meta = load("meta-data")
    user = load("user-data")
    net = load("network-config")
    hostname = user.get("hostname") or meta.get("local-hostname")
    if hostname:
        with open("/etc/hostname", "w", encoding="utf-8") as f:
            f.write(hostname + "\n")
        subprocess.run(["hostname", hostname], check=True)
    for entry in user.get("write_files") or []:
        write_file(entry)
    networkd(net)
    # runcmd as a shell script, for the final stage to run without starting Python again.
    lines = ["#!/bin/sh", "set -e"]
    for cmd in user.get("runcmd") or []:
        if isinstance(cmd, list):
            lines.append(" ".join(shlex.quote(str(a)) for a in cmd))
        else:
            lines.append(str(cmd))
    os.makedirs(STATE, exist_ok=True)
    with open(RUNCMD, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(RUNCMD, 0o700)
    subprocess.run(["umount", SEED_MOUNT], check=False)


def main():
    stage = sys.argv[1] if len(sys.argv) > 1 else ""
    done = os.path.join(STATE, f"firstboot-{stage}.done")
    if os.path.exists(done):
        return
    {"early": early}[stage]()
    os.makedirs(STATE, exist_ok=True)
    with open(done, "w", encoding="utf-8") as f:
        f.write("done\n")


if __name__ == "__main__":
    main()
