#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The test VM's second stage, with the host's userland (read-only, under a
# tmpfs overlay): load the modules the hardware paths need, give the second
# NVMe drive to vfio-pci and the first to the kernel's driver, make an
# in-guest veth pair with soft-RoCE on it, run the ctest tests whose labels
# match "vm" (vm: need the hardware paths; vmkernel: io_uring tests run
# again on Debian's stock kernel) in the build directory $1, print the
# result and power off.
BUILD=$1
FILTER=${2:-.}
LOGLEVEL=${3:-error}
LABEL=${4:-vm}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# (the overlay is writable everywhere; /tmp may hold the build itself)
result() {
    echo "EVPL-VM-RESULT rc=$1"
    echo o >/proc/sysrq-trigger 2>/dev/null
    sleep 60
    exit "$1"
}

# modules of the guest kernel (unpacked on the host, visible here)
kver=$(uname -r)
kdir=$(dirname "$BUILD")/vm/kernel/lib/modules/$kver
[ -d "$kdir" ] || kdir=$(ls -d /work/*/build/vm/kernel/lib/modules/"$kver" 2>/dev/null | head -1)
mkdir -p /lib/modules
ln -sfn "$kdir" "/lib/modules/$kver"
# the kernel's module autoload (crypto for kTLS, ULPs) runs modprobe by name
command -v modprobe >/proc/sys/kernel/modprobe

# NVMe: the second controller to vfio-pci, before nvme can claim it
nvmes=$(for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/class")" = 0x010802 ] && basename "$d"
done | sort)
first=$(echo "$nvmes" | sed -n 1p)
second=$(echo "$nvmes" | sed -n 2p)
modprobe vfio-pci && modprobe vfio_iommu_type1
if [ -n "$second" ]; then
    echo vfio-pci >"/sys/bus/pci/devices/$second/driver_override"
    echo "$second" >/sys/bus/pci/drivers/vfio-pci/bind 2>/dev/null
fi
modprobe nvme
for i in $(seq 50); do [ -e /dev/nvme0n1 ] && break; sleep 0.1; done
export EVPL_NVME_BLOCKDEV=/dev/nvme0n1 EVPL_NVME_CHARDEV=/dev/ng0n1
[ -n "$second" ] && export EVPL_NVME_VFIO=$second
export EVPL_VM=1 EVPL_LOG_LEVEL=$LOGLEVEL

# kernel TLS, soft-RoCE over an in-guest veth pair (nothing leaves the VM)
modprobe tls
modprobe veth
ip link add veth0 type veth peer name veth1 2>/dev/null
ip addr add 10.77.0.1/24 dev veth0 2>/dev/null
ip addr add 10.77.0.2/24 dev veth1 2>/dev/null
ip link set veth0 up
ip link set veth1 up
ip link set lo up
modprobe rdma_rxe && modprobe ib_uverbs && modprobe rdma_ucm
rdma link add rxe0 type rxe netdev veth0
if [ "$LOGLEVEL" = debug ]; then
    rdma link show
    ls /dev/infiniband 2>&1
    if command -v rping >/dev/null; then
        timeout 15 rping -s -a 10.77.0.1 -C 3 -v &
        sleep 1
        timeout 10 rping -c -a 10.77.0.1 -C 3 -v
        echo "rping rc=$?"
        wait
        timeout 15 rdma_server -s 10.77.0.1 -p 7471 &
        sleep 1
        timeout 10 rdma_client -s 10.77.0.1 -p 7471
        echo "rdma_client rc=$?"
        wait
    fi
fi

echo "EVPL-VM: kernel $kver, nvme $first (driver) $second (vfio-pci), build $BUILD"
cd "$BUILD" || result 91
# (streamed to the console as it runs: a run cut short by the host's
# timeout still shows how far it got)
{
    ctest -L "$LABEL" -R "$FILTER" --output-on-failure --timeout 300
    echo $? >/tmp/ctest.rc
} 2>&1 | tee /tmp/ctest.log
rc=$(cat /tmp/ctest.rc)
# a vm test that skips inside the VM is a failure
if grep -q "Skipped\|Not Run" /tmp/ctest.log; then
    echo "EVPL-VM: tests skipped inside the VM count as failures"
    [ $rc = 0 ] && rc=1
fi
result $rc
