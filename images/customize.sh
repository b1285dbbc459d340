#!/bin/sh
# Finishes a dcos-lab guest image. `dcos-lab image build` runs this once, as an mmdebstrap
# customize hook, with the image's root directory as $1. Its text is part of the image's cache key.
set -eu
R="$1"

# Identity: every clone makes its own machine-id and SSH host keys at first boot.
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/etc/ssh/ssh_host_*
cat > "$R/etc/systemd/system/dcos-lab-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this guest's SSH host keys (dcos-lab)
DefaultDependencies=no
After=local-fs.target
Before=ssh.service cloud-init.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/dcos-lab-hostkeys.service \
    "$R/etc/systemd/system/multi-user.target.wants/dcos-lab-hostkeys.service"

# Fast first boot: the same NoCloud seed applied without cloud-init, chosen on the kernel command
# line (dcos-lab.firstboot=fast, with cloud-init=disabled). dcos-lab writes the seed's
# configuration as a shell script too (dcos-lab-firstboot.sh beside user-data); firstboot-early,
# which arrives beside this hook, sources it: no Python to load on a cold page cache, which cost
# ~10 s of a node's first boot under emulation.
mkdir -p "$R/usr/local/lib/dcos-lab"
cp "$(dirname "$0")/firstboot-early.sh" "$R/usr/local/lib/dcos-lab/firstboot-early"
chmod 0755 "$R/usr/local/lib/dcos-lab/firstboot-early"
# The seed is an ISO 9660 volume: its driver loads with the early modules, beside the rest of
# early boot, not on the first boot's path when the seed is mounted (cloud-init mounts it too).
mkdir -p "$R/etc/modules-load.d"
echo isofs > "$R/etc/modules-load.d/dcos-lab-seed.conf"
cat > "$R/etc/systemd/system/dcos-lab-firstboot.service" <<'UNIT'
[Unit]
Description=dcos-lab first boot, early: hostname, files, network (fast path)
DefaultDependencies=no
ConditionKernelCommandLine=dcos-lab.firstboot=fast
ConditionPathExists=!/var/lib/dcos-lab/firstboot-early.done
Wants=network-pre.target
After=local-fs.target systemd-remount-fs.service
Before=network-pre.target systemd-networkd.service ssh.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/dcos-lab/firstboot-early

[Install]
WantedBy=sysinit.target
UNIT
cat > "$R/etc/systemd/system/dcos-lab-firstboot-final.service" <<'UNIT'
[Unit]
Description=dcos-lab first boot, final: runcmd (fast path)
ConditionKernelCommandLine=dcos-lab.firstboot=fast
ConditionPathExists=!/var/lib/dcos-lab/firstboot-final.done
ConditionPathExists=/var/lib/dcos-lab/runcmd.sh
After=network.target ssh.service dcos-lab-firstboot.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /var/lib/dcos-lab/runcmd.sh
ExecStartPost=/bin/sh -c 'echo done > /var/lib/dcos-lab/firstboot-final.done'

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$R/etc/systemd/system/sysinit.target.wants"
ln -sf /etc/systemd/system/dcos-lab-firstboot.service \
    "$R/etc/systemd/system/sysinit.target.wants/dcos-lab-firstboot.service"
ln -sf /etc/systemd/system/dcos-lab-firstboot-final.service \
    "$R/etc/systemd/system/multi-user.target.wants/dcos-lab-firstboot-final.service"

# No password on any account: lock every password field that holds one.
sed -i -E 's/^([^:]+):[^:*!]*:/\1:*:/' "$R/etc/shadow"
# Log in with keys only; root logs in with the lab's key.
mkdir -p "$R/etc/ssh/sshd_config.d"
cat > "$R/etc/ssh/sshd_config.d/dcos-lab.conf" <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
# One host key, ed25519: RSA key generation takes tens of seconds under software emulation.
HostKey /etc/ssh/ssh_host_ed25519_key
CONF
# No dynamic message of the day: Debian's pam_motd runs /etc/update-motd.d (three processes) on
# every SSH session, a command's as well as a shell's, which costs a guest under emulation a
# quarter of each login (measured: a `dcos-lab ssh NODE -- true` 0.81 s -> 0.62 s, median of 32).
# An interactive login still shows the static /etc/motd.
sed -i '/pam_motd\.so.*motd=\/run\/motd\.dynamic/d' "$R/etc/pam.d/sshd"

# The root filesystem is the whole of /dev/vda; systemd grows it to the disk's size at boot.
echo '/dev/vda / ext4 defaults,discard,x-systemd.growfs 0 1' > "$R/etc/fstab"

# /tmp is a tmpfs of systemd's default size (half of RAM), as on the cloud hosts DC/OS targets.
cp "$R/usr/share/systemd/tmp.mount" "$R/etc/systemd/system/tmp.mount"
mkdir -p "$R/etc/systemd/system/local-fs.target.wants"
ln -sf /etc/systemd/system/tmp.mount "$R/etc/systemd/system/local-fs.target.wants/tmp.mount"

# Networking by systemd-networkd (cloud-init renders for it); no ifupdown.
systemctl --root="$R" enable systemd-networkd.service >/dev/null 2>&1
systemctl --root="$R" mask systemd-networkd-wait-online.service >/dev/null 2>&1

# Nothing reaches for the internet on its own: no apt timers, no NTP pools (time comes from the
# host's clock at boot, and dcos-lab corrects it after a revert), no cloud metadata probing.
systemctl --root="$R" mask apt-daily.timer apt-daily-upgrade.timer \
    systemd-timesyncd.service e2scrub_all.timer e2scrub_reap.service >/dev/null 2>&1
mkdir -p "$R/etc/cloud/cloud.cfg.d"
cat > "$R/etc/cloud/cloud.cfg.d/90-dcos-lab.cfg" <<'CFG'
# dcos-lab: NoCloud seed only, nothing fetched from the network, no locale generation.
datasource_list: [NoCloud, None]
datasource:
  NoCloud:
    fs_label: cidata
disable_ec2_metadata: true
locale: false
apt_preserve_sources_list: true
package_update: false
package_upgrade: false
package_reboot_if_required: false
ntp:
  enabled: false
ssh_deletekeys: false
disable_root: false
manage_etc_hosts: false
system_info:
  network:
    renderers: ['networkd']
CFG

# Time stays inside the lab: chrony names no server of its own. The seed writes
# /etc/chrony/conf.d/dcos-lab.conf: the boot node serves its own clock to the private network
# (`local stratum`), every other node follows the boot node.
if [ -d "$R/etc/chrony" ]; then
cat > "$R/etc/chrony/chrony.conf" <<'CONF'
# dcos-lab: no NTP pool, no server outside the lab; the sources come from conf.d (the seed).
confdir /etc/chrony/conf.d
driftfile /var/lib/chrony/chrony.drift
# Step whenever the clock is off by more than a second (a reverted guest resumes an old clock).
makestep 1 -1
# Keep the kernel told: chrony clears STA_UNSYNC only with rtcsync (DC/OS's check-time reads it).
rtcsync
# No UDP command port; chronyc uses the local socket.
cmdport 0
CONF
mkdir -p "$R/etc/chrony/conf.d"
rm -f "$R"/etc/chrony/sources.d/*
# On the cloud-init path the seed's files land during cloud-init's init stage: start after it.
mkdir -p "$R/etc/systemd/system/chrony.service.d"
printf '[Unit]\nAfter=cloud-init.service dcos-lab-firstboot.service\n' \
    > "$R/etc/systemd/system/chrony.service.d/dcos-lab.conf"
fi

# Docker (for the DC/OS installer) runs only where the seed asks for it (labs with `dcos:`):
# its units are enabled but conditioned on /etc/dcos-lab/docker, so other labs pay nothing.
# overlay2 as DC/OS wants it; nothing is pulled (the lab has no registry and no way out).
if [ -e "$R/usr/sbin/dockerd" ]; then
mkdir -p "$R/etc/docker"
cat > "$R/etc/docker/daemon.json" <<'JSON'
{
  "storage-driver": "overlay2",
  "log-driver": "journald"
}
JSON
# AppArmor's boot-time profile load is for Docker's sake too: skipped where Docker does not run.
for u in docker.service docker.socket containerd.service apparmor.service; do
    mkdir -p "$R/etc/systemd/system/$u.d"
    printf '[Unit]\nConditionPathExists=/etc/dcos-lab/docker\nAfter=cloud-init.service dcos-lab-firstboot.service\n' \
        > "$R/etc/systemd/system/$u.d/dcos-lab.conf"
done
systemctl --root="$R" enable docker.service containerd.service >/dev/null 2>&1
systemctl --root="$R" disable docker.socket >/dev/null 2>&1 || true
fi

# Smaller image: no package lists or caches.
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb
