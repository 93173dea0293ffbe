#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
#
# tests/vm/run.sh <build-dir>: boot Debian's kernel under qemu (software
# emulation: the host's KVM cannot run it) with two emulated NVMe drives
# behind an emulated IOMMU and no network card, run the tests labelled vm
# inside, save the console log as <build-dir>/../vm/console.log, and exit
# with the guest's ctest status.  EVPL_VM_TESTS=<regex> runs only those vm
# tests; EVPL_VM_LOG=<level> sets the library's log level inside;
# EVPL_VM_LABEL=<label> runs the tests of another label (e.g. matrix: the
# host's tests on Debian's stock kernel).
set -eu
BUILD=$(cd "${1:?usage: run.sh <build-dir>}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
VM=$(dirname "$BUILD")/vm
"$HERE/prepare.sh" "$VM"
kver=$(cat "$VM/kernel/.done")
LOG=$VM/console.log
# software emulation runs at the host's pace: a slow or busy host needs
# several times the usual ~16 minutes (30 on a slow day; a hung test still
# ends at its 300 s ctest limit)
TIMEOUT=${EVPL_VM_TIMEOUT:-3600}
start=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -machine q35 -m 3072 -smp 2 \
    -device intel-iommu,intremap=on \
    -kernel "$VM/kernel/boot/vmlinuz-$kver" -initrd "$VM/initramfs.cpio.gz" \
    -append "console=ttyS0 intel_iommu=on iommu=nopt panic=-1 loglevel=4 evpl.guest=$HERE/guest.sh evpl.args=$BUILD evpl.filter=${EVPL_VM_TESTS:-.} evpl.log=${EVPL_VM_LOG:-error} evpl.label=${EVPL_VM_LABEL:-vm}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -drive file="$VM/nvme0.img",if=none,id=nvm0,format=raw -device nvme,serial=EVPL0,drive=nvm0 \
    -drive file="$VM/nvme1.img",if=none,id=nvm1,format=raw -device nvme,serial=EVPL1,drive=nvm1 \
    -nic none -nographic -no-reboot >"$LOG" 2>&1
qrc=$?
set -e
end=$(date +%s)
grep -a "EVPL-VM\|tests passed\|tests failed\|Test *#\|FAIL" "$LOG" || true
rc=$(sed -n 's/.*EVPL-VM-RESULT rc=\([0-9]*\).*/\1/p' "$LOG" | tail -1)
echo "vm: $((end - start)) s wall, console log in $LOG"
if [ -z "$rc" ]; then
    echo "vm: no result from the guest (qemu exit $qrc)"
    exit 1
fi
exit "$rc"
