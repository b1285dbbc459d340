#!/bin/sh
# dcos-lab fast first boot, early stage (written by dcos-lab with this seed's user-data and
# network-config; cloud-init ignores it). Run by the image's dcos-lab-firstboot.service.
set -eu
mkdir -p /etc /etc/chrony/conf.d /etc/systemd/network /root/.ssh /usr/local/sbin /var/lib/dcos-lab
rm -f /root/.ssh/authorized_keys /etc/hosts /etc/resolv.conf /usr/local/sbin/dcos-lab-harden /etc/chrony/conf.d/dcos-lab.conf /etc/systemd/network/10-dcos-lab-private.network /etc/systemd/network/10-dcos-lab-public.network /var/lib/dcos-lab/runcmd.sh
umask 022
printf '%s\n' public > /etc/hostname
printf '%s' public > /proc/sys/kernel/hostname
umask 0177; printf '%s' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdjb2xkZW4ta2V5LWZvci10ZXN0cy1vbmx5LW5vdC1yZWFs dcos-lab golden
' > /root/.ssh/authorized_keys
umask 0133; printf '%s' '127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
172.30.148.10 boot.ha.dcos-lab boot.ha boot
172.30.148.11 m1.ha.dcos-lab m1.ha m1
172.30.148.12 m2.ha.dcos-lab m2.ha m2
172.30.148.13 m3.ha.dcos-lab m3.ha m3
172.30.148.14 a1.ha.dcos-lab a1.ha a1
172.30.148.15 a2.ha.dcos-lab a2.ha a2
172.30.148.16 public.ha.dcos-lab public.ha public
fd53:cd5:5c8b:2::10 public.ha.dcos-lab public.ha public
' > /etc/hosts
umask 0133; printf '%s' 'nameserver 172.30.148.1
search ha.dcos-lab
' > /etc/resolv.conf
umask 0022; printf '%s' '#!/bin/sh
# dcos-lab hardening: the fixes the cloud install path applies before a DC/OS install.
set -eu

# /tmp: a tmpfs large enough for the ~600 MB bootstrap download, on every boot.
if findmnt -n -t tmpfs /tmp >/dev/null; then
  mount -o remount,size=1024M,mode=1777,nosuid,nodev /tmp
else
  mount -t tmpfs -o size=1024M,mode=1777,nosuid,nodev tmpfs /tmp
fi
mkdir -p /etc/systemd/system/tmp.mount.d
printf '"'"'[Mount]\nOptions=size=1024M,mode=1777,nosuid,nodev\n'"'"' > /etc/systemd/system/tmp.mount.d/90-dcos-lab.conf
if ! grep -qs '"'"'^[^#]* /tmp '"'"' /etc/fstab && [ ! -e /etc/systemd/system/tmp.mount ] && [ ! -e /lib/systemd/system/tmp.mount ] && [ ! -e /usr/lib/systemd/system/tmp.mount ]; then
  sed -i '"'"'\|^tmpfs /tmp |d'"'"' /etc/fstab
  echo '"'"'tmpfs /tmp tmpfs size=1024M,mode=1777,nosuid,nodev 0 0'"'"' >> /etc/fstab
fi

# Swap: a file, made once.
if ! swapon --show=NAME --noheadings | grep -qx /swapfile; then
  if [ ! -f /swapfile ]; then
    fallocate -l 2048M /swapfile.new
    chmod 0600 /swapfile.new
    mkswap /swapfile.new >/dev/null
    mv /swapfile.new /swapfile
  fi
  swapon /swapfile
fi
grep -q '"'"'^/swapfile '"'"' /etc/fstab || echo '"'"'/swapfile none swap sw 0 0'"'"' >> /etc/fstab

# IPv6 on.
printf '"'"'net.ipv6.conf.all.disable_ipv6 = 0\nnet.ipv6.conf.default.disable_ipv6 = 0\n'"'"' > /etc/sysctl.d/90-dcos-lab-ipv6.conf
sysctl -q -p /etc/sysctl.d/90-dcos-lab-ipv6.conf

# Telemetry off: nothing in the guest may phone home.
units=""
for u in popularity-contest.timer apt-daily.timer apt-daily-upgrade.timer systemd-timesyncd.service; do
  case "$(systemctl is-enabled "$u" 2>/dev/null || true)" in
    masked|masked-runtime|not-found|"") ;;
    *) units="$units $u" ;;
  esac
done
if [ -n "$units" ]; then systemctl mask --now $units >/dev/null 2>&1 || true; fi
' > /usr/local/sbin/dcos-lab-harden
umask 0133; printf '%s' '# dcos-lab: follow the boot node (boot), the lab'"'"'s clock; nothing outside the lab.
server 172.30.148.10 iburst minpoll -2 maxpoll 2
' > /etc/chrony/conf.d/dcos-lab.conf
umask 0133; printf '%s' '[Match]
MACAddress=02:94:60:09:00:06

[Network]
LinkLocalAddressing=ipv6
DHCP=no
IPv6AcceptRA=no
Address=172.30.148.16/24
DNS=172.30.148.1
Domains=ha.dcos-lab
' > /etc/systemd/network/10-dcos-lab-private.network
umask 0133; printf '%s' '[Match]
MACAddress=02:94:60:09:01:06

[Network]
LinkLocalAddressing=ipv6
DHCP=no
IPv6AcceptRA=no
Address=172.31.148.16/24
Address=fd53:cd5:5c8b:2::10/64

[Route]
Destination=0.0.0.0/0
Gateway=172.31.148.1

[Route]
Destination=::/0
Gateway=fd53:cd5:5c8b:2::1
' > /etc/systemd/network/10-dcos-lab-public.network
umask 0077; printf '%s' '#!/bin/sh
set -e
sh -c '"'"'/usr/local/sbin/dcos-lab-harden && mkdir -p /var/lib/dcos-lab && sync && date -u +%FT%TZ > /var/lib/dcos-lab/ready && sync'"'"'
' > /var/lib/dcos-lab/runcmd.sh
chmod 0755 /usr/local/sbin/dcos-lab-harden
chmod 0700 /var/lib/dcos-lab/runcmd.sh
umask 022
