#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
#
# tests/vm/prepare.sh <vm-dir>: everything the test VM needs, from Debian
# packages only, into <vm-dir> (idempotent; re-running reuses what exists):
#   - qemu, busybox-static, kmod, cpio on the host (apt);
#   - Debian's kernel package, fetched with apt-get download and unpacked
#     (never installed on the host), its module index built;
#   - an initramfs: busybox, the modules to mount the host's root over 9p
#     read-only with a tmpfs overlay, and tests/vm/init;
#   - two NVMe disk images for the guest.
set -eu
VM=${1:?usage: prepare.sh <vm-dir>}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$VM"
VM=$(cd "$VM" && pwd)

need=""
for p in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static kmod:kmod cpio:cpio ip:iproute2 rdma:iproute2; do
    command -v "${p%%:*}" >/dev/null 2>&1 || need="$need ${p#*:}"
done
[ -x /bin/busybox ] || need="$need busybox-static"
if [ -n "$need" ]; then
    apt-get install -y --no-install-recommends $need >/dev/null
fi

# the kernel: whatever linux-image-amd64 points at today
if [ ! -f "$VM/kernel/.done" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
    [ -n "$pkg" ] || { echo "prepare.sh: cannot resolve the kernel package" >&2; exit 1; }
    rm -rf "$VM/debs" "$VM/kernel"
    mkdir -p "$VM/debs"
    (cd "$VM/debs" && apt-get download "$pkg" >/dev/null)
    dpkg-deb -x "$VM"/debs/*.deb "$VM/kernel"
    rm -rf "$VM/debs"
    kver=$(ls "$VM/kernel/lib/modules")
    depmod -b "$VM/kernel" "$kver"
    echo "$kver" >"$VM/kernel/.done"
fi
kver=$(cat "$VM/kernel/.done")
KMOD="$VM/kernel/lib/modules/$kver"

# the initramfs: busybox + the modules needed before the host's root is there
rm -rf "$VM/initramfs"
mkdir -p "$VM/initramfs/bin" "$VM/initramfs/lib/modules" "$VM/initramfs/proc" \
    "$VM/initramfs/sys" "$VM/initramfs/dev" "$VM/initramfs/host" "$VM/initramfs/rw" \
    "$VM/initramfs/root"
cp /bin/busybox "$VM/initramfs/bin/busybox"
for a in sh mount mkdir insmod echo cat switch_root poweroff sleep ls; do
    ln -sf busybox "$VM/initramfs/bin/$a"
done
# module closure (modules.dep order: dependencies first)
mods=""
for m in virtio_pci 9p 9pnet_virtio overlay; do
    path=$(modprobe -d "$VM/kernel" -S "$kver" --show-depends "$m" 2>/dev/null |
           sed -n 's/^insmod \([^ ]*\).*/\1/p')
    for p in $path; do
        case " $mods " in *" $p "*) ;; *) mods="$mods $p" ;; esac
    done
done
: >"$VM/initramfs/lib/modules/order"
for p in $mods; do
    b=$(basename "$p")
    case "$b" in
        *.xz) xz -dc "$p" >"$VM/initramfs/lib/modules/${b%.xz}"; b=${b%.xz} ;;
        *) cp "$p" "$VM/initramfs/lib/modules/$b" ;;
    esac
    echo "$b" >>"$VM/initramfs/lib/modules/order"
done
cp "$HERE/init" "$VM/initramfs/init"
chmod +x "$VM/initramfs/init"
(cd "$VM/initramfs" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$VM/initramfs.cpio.gz")

# two NVMe drives: the first for the kernel's nvme driver (block device and
# passthrough), the second for vfio-pci
for i in 0 1; do
    [ -f "$VM/nvme$i.img" ] || truncate -s 512M "$VM/nvme$i.img"
done
echo "vm ready: kernel $kver, $(wc -l <"$VM/initramfs/lib/modules/order") modules in the initramfs"
