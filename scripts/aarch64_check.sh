#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run through trap and step() look unreachable to shellcheck
# Proof that edgemask's runtime works on 64-bit Raspberry Pi OS Bookworm (Debian 12 arm64, Python 3.11):
# build (once, cached) a Debian Bookworm arm64 root filesystem with debootstrap, install the runtime there
# with pip the way a Pi user would, then, under qemu-user emulation, run the runtime's TensorFlow-free tests
# and `edgemask-run --json` with the default int8 models on a few scenes_dev images, and compare those
# detections with the same run on this x86-64 machine. Ends with a (check, result) table; exits non-zero
# on any failure or difference. Slow (on a 2-core x86-64: first run ~15 min, of which debootstrap ~7 min;
# cached runs ~5 min), so it is not part of the default test command. Emulated timings say nothing about
# a real Pi.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo scripts/aarch64_check.sh [options]

Runs edgemask's runtime on Debian Bookworm arm64 under qemu-user emulation and compares it with x86-64.

Options:
  --workdir DIR      cache for the rootfs, pip downloads and logs (default /var/tmp/edgemask-aarch64);
                     never inside the git tree
  --images N         number of scenes_dev images to compare (default 4)
  --cpu NAME         CPU that qemu emulates and /proc/cpuinfo names: cortex-a72 = Raspberry Pi 4
                     (default), cortex-a76 = Raspberry Pi 5
  --host-python PY   x86-64 Python that can import edgemask's runtime (default: python3 on PATH)
  --models DIR       folder with face_detector_{yunet,res10}_int8.tflite and mask_classifier_int8.tflite
                     (default: models/ of this tree), bind-mounted read-only into the rootfs
  --mirror URL       Debian mirror for debootstrap (default http://deb.debian.org/debian)
  --match-host       install the host's versions of numpy, OpenCV, LiteRT and ONNX Runtime instead of
                     the newest (tells architecture effects from version effects)
  --detector D       edgemask-run's --detector on both sides: yunet (the default) or res10
  --skip-pytest      skip the (slow, emulated) test suite: re-checking detections only
  --rebuild          throw the cached rootfs away and build it again
  --prepare-only     build the rootfs and install the runtime, then stop (warms the cache)
  -h, --help         this help

Needs root, debootstrap and qemu-user-static (installed with apt-get if missing), and a kernel with
binfmt_misc: the script mounts it if needed and registers qemu-aarch64 itself (flag F, so the chroot needs
no copy of qemu), and undoes both on exit. Shared assets (EDGEMASK_ASSETS, default ../shared/assets) are
bind-mounted read-only into the rootfs, never copied.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=/var/tmp/edgemask-aarch64
N_IMAGES=4
QEMU_CPU_NAME=cortex-a72
HOST_PY=python3
MIRROR=http://deb.debian.org/debian
REBUILD=0
PREPARE_ONLY=0
MATCH_HOST=0
SKIP_PYTEST=0
DETECTOR=yunet
RUNTIME_PACKAGES='numpy|opencv-python-headless|ai-edge-litert|onnxruntime'
ASSETS=${EDGEMASK_ASSETS:-$REPO/../shared/assets}
MODELS=$REPO/models
MODEL_FILES=(face_detector_yunet_int8.tflite face_detector_res10_int8.tflite mask_classifier_int8.tflite)

while [[ $# -gt 0 ]]; do
    case $1 in
        --workdir) WORKDIR=$2; shift 2 ;;
        --images) N_IMAGES=$2; shift 2 ;;
        --cpu) QEMU_CPU_NAME=$2; shift 2 ;;
        --host-python) HOST_PY=$2; shift 2 ;;
        --models) MODELS=$2; shift 2 ;;
        --mirror) MIRROR=$2; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --match-host) MATCH_HOST=1; shift ;;
        --skip-pytest) SKIP_PYTEST=1; shift ;;
        --detector) DETECTOR=$2; shift 2 ;;
        --prepare-only) PREPARE_ONLY=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "aarch64_check: $*" >&2; exit 1; }

case $QEMU_CPU_NAME in
    cortex-a72 | cortex-a76) ;;
    *) die "--cpu must be cortex-a72 (Pi 4) or cortex-a76 (Pi 5)" ;;
esac

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mount, binfmt_misc)"
[[ $(uname -m) == x86_64 ]] || die "meant to run on x86-64 (this is $(uname -m))"
WORKDIR=$(realpath -m "$WORKDIR")
case $WORKDIR/ in "$REPO"/*) die "--workdir must be outside the git tree ($REPO)" ;; esac
ASSETS=$(realpath "$ASSETS") || die "shared assets not found (set EDGEMASK_ASSETS)"
MODELS=$(realpath -m "$MODELS")
SCENES=$ASSETS/datasets/scenes_dev/images
[[ -d $SCENES ]] || die "no scenes_dev images under $SCENES"

ROOTFS=$WORKDIR/rootfs
LOGS=$WORKDIR/logs
OUT=$WORKDIR/out
IN_SRC=/opt/edgemask/src
IN_VENV=/opt/edgemask/venv
IN_ASSETS=/opt/edgemask/assets
IN_MODELS=/opt/edgemask/models
mkdir -p "$LOGS" "$OUT"

# --- results table ------------------------------------------------------------------------------------
CHECKS=()
RESULTS=()
FAILED=0
T_START=$SECONDS

record() { CHECKS+=("$1"); RESULTS+=("$2"); [[ $2 == PASS* || $2 == ok* ]] || FAILED=1; }

print_table() {
    local i w=5
    for i in "${!CHECKS[@]}"; do ((${#CHECKS[i]} > w)) && w=${#CHECKS[i]}; done
    printf '\n| %-*s | %s\n' "$w" check result
    printf '|-%s-|-%s\n' "$(printf '%*s' "$w" '' | tr ' ' -)" "------"
    for i in "${!CHECKS[@]}"; do printf '| %-*s | %s\n' "$w" "${CHECKS[i]}" "${RESULTS[i]}"; done
    printf '\nwall time: %d s; logs: %s\n' $((SECONDS - T_START)) "$LOGS"
}

# step NAME LOG CMD...: run CMD with its output in LOG, record PASS/FAIL and the time it took.
step() {
    local name=$1 log=$LOGS/$2 t0=$SECONDS rc=0
    shift 2
    echo "== $name (log: $log)"
    # A subshell outside any || list, so that `set -e` holds inside the functions it runs.
    set +e
    (set -e; "$@") >"$log" 2>&1
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
        record "$name" "PASS ($((SECONDS - t0)) s)"
    else
        record "$name" "FAIL (exit $rc, $((SECONDS - t0)) s)"
        tail -n 20 "$log" | sed 's/^/    /' >&2
    fi
    return $rc
}

# --- binfmt_misc and mounts, undone on exit -----------------------------------------------------------
BINFMT=/proc/sys/fs/binfmt_misc
MOUNTED_BINFMT=0
REGISTERED_QEMU=0
MOUNTS=()

cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
    done
    [[ $REGISTERED_QEMU -eq 1 ]] && echo -1 >"$BINFMT/qemu-aarch64" 2>/dev/null
    [[ $MOUNTED_BINFMT -eq 1 ]] && umount "$BINFMT" 2>/dev/null
    return 0
}

on_exit() {
    local rc=$?
    cleanup
    ((rc == 130)) && record "run" "FAIL (interrupted)"
    ((${#CHECKS[@]})) && print_table
    ((rc == 0 && FAILED)) && rc=1
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

bind_ro() {
    mkdir -p "$2"
    mount --bind "$1" "$2" && MOUNTS+=("$2")
    mount -o remount,bind,ro "$2"
}

# The kernel runs arm64 ELF files through qemu-aarch64-static once this entry exists. Flag F opens the
# interpreter now, so it works inside the chroot without a copy of qemu there.
register_qemu() {
    if ! mountpoint -q "$BINFMT"; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" ||
            die "cannot mount binfmt_misc: this container gives no access to it, so arm64 binaries cannot run"
        MOUNTED_BINFMT=1
    fi
    if [[ -e $BINFMT/qemu-aarch64 ]]; then
        grep -q '^enabled' "$BINFMT/qemu-aarch64" || echo 1 >"$BINFMT/qemu-aarch64"
    else
        local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
        local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
        echo ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64-static):F" >"$BINFMT/register" ||
            die "cannot register qemu-aarch64 in binfmt_misc"
        REGISTERED_QEMU=1
    fi
}

ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v arch-test >/dev/null || missing+=(arch-test)
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    ((${#missing[@]} == 0)) && return 0
    echo "installing ${missing[*]} with apt-get"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# --- the arm64 rootfs (cached) ------------------------------------------------------------------------
build_rootfs() {
    rm -rf "$ROOTFS.partial"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOTFS.partial" "$MIRROR"
    mv "$ROOTFS.partial" "$ROOTFS"
}

mount_rootfs() {
    mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
    mount --bind /dev "$ROOTFS/dev" && MOUNTS+=("$ROOTFS/dev")
    bind_ro /sys "$ROOTFS/sys"
    fake_cpuinfo >"$WORKDIR/cpuinfo"
    mount --bind "$WORKDIR/cpuinfo" "$ROOTFS/proc/cpuinfo" && MOUNTS+=("$ROOTFS/proc/cpuinfo")
    bind_ro "$ASSETS" "$ROOTFS$IN_ASSETS"
    if [[ -d $MODELS ]]; then bind_ro "$MODELS" "$ROOTFS$IN_MODELS"; fi
    # Name resolution and the host's CA bundle (which trusts any proxy the host trusts) for pip.
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/host-ca-bundle.crt"
}

# qemu-user 7.2 shows arm64 programs the host's x86 /proc/cpuinfo. LiteRT's XNNPACK (through the cpuinfo
# library) then crashes, or, without /sys, silently runs without XNNPACK, which the Pi never does. A
# /proc/cpuinfo as the Pi's kernel writes it (one entry per host CPU, to match /sys) keeps the Pi's path.
fake_cpuinfo() {
    local i part variant revision features model
    if [[ $QEMU_CPU_NAME == cortex-a76 ]]; then
        part=0xd0b variant=0x4 revision=1 model="Raspberry Pi 5 Model B (emulated)"
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    else
        part=0xd08 variant=0x0 revision=3 model="Raspberry Pi 4 Model B (emulated)"
        features="fp asimd evtstrm crc32 cpuid"
    fi
    for ((i = 0; i < $(nproc --all); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
        printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$variant" "$part" "$revision"
    done
    printf 'Model\t\t: %s\n' "$model"
}

# in_rootfs CMD...: run CMD as the Pi user would, in a clean environment, niced (a training job may share
# the cores). QEMU_CPU is read by every qemu process, the first one (from chroot) and each one exec starts.
in_rootfs() {
    QEMU_CPU=$QEMU_CPU_NAME nice -n 10 chroot "$ROOTFS" /usr/bin/env -i \
        HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU_NAME" \
        PATH=$IN_VENV/bin:/usr/local/bin:/usr/bin:/bin \
        PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        EDGEMASK_ASSETS=$IN_ASSETS "$@"
}

# The working tree as git sees it (tracked and untracked files, minus ignored ones): the same code the
# x86-64 side runs from $REPO.
copy_source() {
    rm -rf "$ROOTFS$IN_SRC"
    mkdir -p "$ROOTFS$IN_SRC"
    git -C "$REPO" ls-files -z -co --exclude-standard |
        tar -C "$REPO" --null -T - --ignore-failed-read -cf - | tar -C "$ROOTFS$IN_SRC" -xf -
}

host_runtime_versions() {
    "$HOST_PY" -m pip list --format=freeze 2>/dev/null | grep -iE "^($RUNTIME_PACKAGES)=="
}

# Dependencies as a fresh `pip install` on a Pi gets them today (the newest, also in a cached venv), or
# pinned to the host's with --match-host; then edgemask itself, rebuilt from this tree.
install_runtime() {
    [[ -x $ROOTFS$IN_VENV/bin/python ]] || in_rootfs python3 -m venv "$IN_VENV"
    local pins=/opt/edgemask/host-versions.txt
    if [[ $MATCH_HOST -eq 1 ]]; then host_runtime_versions; fi >"$ROOTFS$pins"
    in_rootfs sh -c "cd $IN_SRC && pip install --upgrade --upgrade-strategy eager -c $pins \
        '.[runtime]' pytest hypothesis pillow && pip install --force-reinstall --no-deps ."
}

# --- the checks ----------------------------------------------------------------------------------------
pick_images() {
    local all n step i
    mapfile -t all < <(find "$SCENES" -maxdepth 1 -type f -iname '*.jpg' -printf '%f\n' | sort -V)
    n=${#all[@]}
    ((n > 0)) || die "no .jpg in $SCENES"
    step=$((n / N_IMAGES > 0 ? n / N_IMAGES : 1))
    IMAGES=()
    for ((i = 0; i < n && ${#IMAGES[@]} < N_IMAGES; i += step)); do IMAGES+=("${all[i]}"); done
}

# link_images DIR TARGET_DIR: a folder of symlinks to the picked images, as edgemask-run's --source.
link_images() {
    rm -rf "$1"
    mkdir -p "$1"
    for f in "${IMAGES[@]}"; do ln -s "$2/$f" "$1/$f"; done
}

# Both sides find the default int8 files by edgemask-run's own lookup (EDGEMASK_MODELS), one thread.
# --precision int8: the files a Pi runs by default, on both sides (x86-64 would pick fp32 YuNet).
RUN_ARGS=(--threads 1 --quiet --json --detector "$DETECTOR" --precision int8)

run_x86() {
    link_images "$WORKDIR/images" "$SCENES"
    (cd "$REPO" && PYTHONPATH=$REPO EDGEMASK_ASSETS=$ASSETS EDGEMASK_MODELS=$MODELS "$HOST_PY" -c \
        'import sys; from edgemask.app.cli import main; sys.exit(main())' \
        --source "$WORKDIR/images" "${RUN_ARGS[@]}") >"$OUT/x86_64.json"
}

run_arm64() {
    link_images "$ROOTFS/opt/edgemask/images" "$IN_ASSETS/datasets/scenes_dev/images"
    # shellcheck disable=SC2016  # expanded by the inner sh
    in_rootfs env EDGEMASK_MODELS="$IN_MODELS" EDGEMASK_NATIVE_LOG=1 sh -c 'cd "$0" && exec edgemask-run "$@"' "$IN_SRC" \
        --source /opt/edgemask/images "${RUN_ARGS[@]}" >"$OUT/aarch64.json"
}

# Digests of every array before a network, on both sides, compared stage by stage: where they first
# differ is where the two paths diverge (decode, a resize, the classifier input).
digests() {
    (cd "$REPO" && PYTHONPATH=$REPO "$HOST_PY" scripts/preprocessing_digests.py "${IMAGES[@]/#/$SCENES/}") \
        >"$OUT/digests_x86_64.json"
    in_rootfs sh -c 'cd "$0" && exec python scripts/preprocessing_digests.py "$@"' "$IN_SRC" \
        "${IMAGES[@]/#/$IN_ASSETS/datasets/scenes_dev/images/}" >"$OUT/digests_aarch64.json"
    "$HOST_PY" "$REPO/scripts/preprocessing_digests.py" --compare \
        "$OUT/digests_x86_64.json" "$OUT/digests_aarch64.json" | tee "$OUT/digests.txt"
}

versions() {
    echo "date: $(date -u +%FT%TZ)"
    echo "tree: $(git -C "$REPO" describe --always --dirty)"
    echo "qemu: $(qemu-aarch64-static --version | head -1), -cpu $QEMU_CPU_NAME"
    echo "rootfs: Debian $(cat "$ROOTFS/etc/debian_version") $(in_rootfs uname -m), $(in_rootfs python --version)"
    in_rootfs pip list --format=freeze 2>/dev/null |
        grep -iE "^(edgemask|$RUNTIME_PACKAGES|pillow|pytest)==" | sed 's/^/  arm64 /' || true
    echo "host: $("$HOST_PY" --version)"
    host_runtime_versions | sed 's/^/  x86-64 /' || true
}

main() {
    if [[ $PREPARE_ONLY -eq 0 ]]; then
        for m in "${MODEL_FILES[@]}"; do
            [[ -f $MODELS/$m ]] || die "$MODELS/$m missing: make it with edgemask-export --int8, or pass --models DIR"
        done
    fi
    ensure_host_tools
    register_qemu
    if [[ $REGISTERED_QEMU -eq 1 ]]; then
        record "binfmt_misc: qemu-aarch64" "ok (registered here, removed on exit)"
    else
        record "binfmt_misc: qemu-aarch64" "ok (already registered)"
    fi
    if [[ $REBUILD -eq 1 ]]; then rm -rf "$ROOTFS"; fi
    if [[ -d $ROOTFS ]]; then
        record "Bookworm arm64 rootfs" "ok (cached in $ROOTFS)"
    else
        step "Bookworm arm64 rootfs (debootstrap)" debootstrap.log build_rootfs || exit 1
    fi
    mount_rootfs
    [[ $(in_rootfs uname -m) == aarch64 ]] || die "the rootfs does not run as aarch64"
    record "arm64 binaries run (qemu -cpu $QEMU_CPU_NAME)" "ok"
    copy_source
    step "pip install '.[runtime]' (arm64, Python 3.11)" pip.log install_runtime || exit 1
    versions | tee "$LOGS/versions.txt"
    [[ $PREPARE_ONLY -eq 1 ]] && exit 0

    if [[ $SKIP_PYTEST -eq 0 ]]; then
        step "pytest -m 'not tf' (arm64)" pytest.log \
            in_rootfs sh -c "cd $IN_SRC && pytest -q -rs -p no:cacheprovider -m 'not tf' tests" || true
    fi
    pick_images
    step "pixels before the networks bit-identical (decode, resizes, crops)" digests.log digests || true
    step "edgemask-run --json, ${#IMAGES[@]} images (x86-64)" run_x86.log run_x86 || exit 1
    step "edgemask-run --json, ${#IMAGES[@]} images (arm64)" run_arm64.log run_arm64 || exit 1
    if grep -q "XNNPACK delegate" "$LOGS/run_arm64.log"; then
        record "LiteRT uses XNNPACK (arm64), as on a Pi" "ok"
    else
        record "LiteRT uses XNNPACK (arm64), as on a Pi" "FAIL (see $LOGS/run_arm64.log)"
    fi
    echo "== compare (log: $LOGS/compare.log)"
    local rc=0 check result
    "$HOST_PY" "$REPO/scripts/compare_runs.py" --tsv "$OUT/x86_64.json" "$OUT/aarch64.json" \
        >"$OUT/compare.tsv" 2>"$LOGS/compare.log" || rc=$?
    while IFS=$'\t' read -r check result; do record "$check" "$result"; done <"$OUT/compare.tsv"
    if [[ $rc -ne 0 && ! -s $OUT/compare.tsv ]]; then record "compare x86-64 vs arm64" "FAIL (exit $rc)"; fi
}

main "$@"
exit
