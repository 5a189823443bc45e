#!/usr/bin/env bash
# Build (once, cached) an emulated aarch64 board on this x86_64 machine: a Debian bookworm arm64
# sysroot with python3.11, numpy and onnxruntime, run through qemu user-mode emulation.
#
#   bash scripts/emulated_board.sh            # set up (idempotent); prints the board directory
#
# Recipe (docs/devices.md): the arm64 .debs are downloaded with a private apt state and unpacked with
# dpkg -x (no emulation needed to install); wheels come from the HOST pip with --platform; a fake
# ARM /proc/cpuinfo keeps onnxruntime's CPU detection from crashing under qemu-user.
set -euo pipefail
# A user-level cache, shared by every checkout and install (the board is ~220 MB).
CACHE=${WHERRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wherry}
BOARD=$CACHE/emulated-aarch64
ROOT=$BOARD/sysroot
SITE=$BOARD/site-packages
STAMP=$BOARD/.ready-v2
say() { echo "emulated-aarch64: $*" >&2; }

# A fake ARM /proc/cpuinfo inside the sysroot (qemu's -L prefix serves it instead of the host's):
# onnxruntime segfaults under qemu-user reading the host's x86 one. It lists Cortex-A72 cores (a
# Raspberry Pi 4), as many as the host has: Paddle Lite counts CPUs from /sys/devices/system/cpu
# (the host's, through qemu) and aborts with std::out_of_range when /proc/cpuinfo lists more.
# Rewritten whenever the count differs (a cached board may move to another machine).
host_cpus() {
  local n; n=$(ls -d /sys/devices/system/cpu/cpu[0-9]* 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] || n=$(nproc)
  echo "$n"
}
write_cpuinfo() {
  local root=$1 n i
  n=$(host_cpus)
  [ -f "$root/proc/cpuinfo" ] && [ "$(grep -c '^processor' "$root/proc/cpuinfo")" = "$n" ] && return 0
  mkdir -p "$root/proc"
  for ((i = 0; i < n; i++)); do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
  done > "$root/proc/cpuinfo.tmp"
  mv "$root/proc/cpuinfo.tmp" "$root/proc/cpuinfo"
}

# qemu runs the board: checked on every use, not only when the board is built, since a cached board
# (restored by CI, or kept across machines) can outlive the qemu that was installed beside it.
ensure_qemu() {
  command -v qemu-aarch64-static >/dev/null 2>&1 && return 0
  say "installing qemu-user-static (apt)"
  if [ "$(id -u)" != 0 ]; then say "need root to apt-get install qemu-user-static"; exit 1; fi
  apt-get install -y -qq qemu-user-static >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq qemu-user-static >/dev/null; }
}

if [ -f "$STAMP" ]; then ensure_qemu; write_cpuinfo "$ROOT"; echo "$BOARD"; exit 0; fi
# Two first uses at once (parallel test runs) must not build into the same partial directory.
mkdir -p "$CACHE"
exec 9>"$CACHE/emulated-aarch64.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || true
  if [ -f "$STAMP" ]; then ensure_qemu; write_cpuinfo "$ROOT"; echo "$BOARD"; exit 0; fi
fi

ensure_qemu

rm -rf "$BOARD.partial" && mkdir -p "$BOARD.partial"
APT=$BOARD.partial/apt
mkdir -p "$APT"/lists/partial "$APT"/archives/partial "$APT"/etc/sources.list.d "$APT"/etc/preferences.d
touch "$APT/status"
# The same Debian mirror the host uses (a local mirror or proxy may be the only one reachable);
# deb.debian.org when the host is not Debian bookworm. WHERRY_DEBIAN_MIRROR overrides both.
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # one-line format: deb [opts] URI bookworm main ...
    awk '$1 == "deb" { sub(/\[[^]]*\]/, ""); $0 = $0
                       if ($3 == "bookworm" && $2 !~ /security/) { print $2; exit } }' "$f"
    # deb822 format: a stanza with URIs: ... and Suites: bookworm ...
    awk 'BEGIN { RS = ""; FS = "\n" }
         { u = ""; s = 0
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
             if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) s = 1 }
           if (u != "" && s && u !~ /security/) { print u; exit } }' "$f"
  done | head -n 1
}
MIRROR=${WHERRY_DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
if [ ! -f "$KEYRING" ]; then
  say "installing debian-archive-keyring (apt) to verify Debian's packages"
  apt-get install -y -qq debian-archive-keyring >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debian-archive-keyring >/dev/null; }
fi
say "Debian mirror: $MIRROR"
echo "deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm main" > "$APT/etc/sources.list"
APT_OPTS=(-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Debug::NoLocking=1
  -o Dir::State="$APT" -o Dir::State::Lists="$APT/lists" -o Dir::State::status="$APT/status"
  -o Dir::Cache="$APT" -o Dir::Cache::archives="$APT/archives"
  -o Dir::Etc::SourceList="$APT/etc/sources.list" -o Dir::Etc::SourceParts="$APT/etc/sources.list.d"
  -o Dir::Etc::Preferences="$APT/etc/preferences" -o Dir::Etc::PreferencesParts="$APT/etc/preferences.d")
say "downloading Debian bookworm arm64 python3.11 and its dependencies"
apt-get "${APT_OPTS[@]}" update -qq
apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends --download-only python3.11 libstdc++6 libgcc-s1 >/dev/null

say "unpacking $(ls "$APT"/archives/*.deb | wc -l) packages"
PART_ROOT=$BOARD.partial/sysroot
mkdir -p "$PART_ROOT"
for deb in "$APT"/archives/*.deb; do dpkg -x "$deb" "$PART_ROOT"; done
# bookworm is merged-/usr: the loader and libraries are looked up under /lib, /bin ...
for d in lib bin sbin; do [ -e "$PART_ROOT/$d" ] || ln -s "usr/$d" "$PART_ROOT/$d"; done
write_cpuinfo "$PART_ROOT"

say "installing numpy and onnxruntime aarch64 wheels"
# The host Python that runs wherry fetches them (WHERRY_HOST_PYTHON, set by wherry; python3 when the
# script is run by hand), never whichever python3 is first on PATH. Two steps, because pip up to 23.x
# checks Requires-Python against its OWN interpreter in `install --target` even with --python-version
# (a 3.10 host refused every numpy >= 2.3 for the 3.11 board), while `pip download` resolves for the
# Python it is told: download resolves for the board, then the exact files are unpacked as they are.
HOST_PY=${WHERRY_HOST_PYTHON:-python3}
WHEELS=$BOARD.partial/wheels
PIP=(env PIP_ROOT_USER_ACTION=ignore "$HOST_PY" -m pip --disable-pip-version-check)
BOARD_TAGS=(--platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --only-binary=:all:)
"${PIP[@]}" download --quiet -d "$WHEELS" "${BOARD_TAGS[@]}" numpy onnxruntime
"${PIP[@]}" install --quiet --no-index --no-deps --ignore-requires-python --target "$BOARD.partial/site-packages" \
  "${BOARD_TAGS[@]}" "$WHEELS"/*.whl
rm -rf "$WHEELS"

rm -rf "$APT"
rm -rf "$BOARD" && mv "$BOARD.partial" "$BOARD"
touch "$STAMP"
say "ready: $BOARD ($(du -sh "$BOARD" | cut -f1))"
echo "$BOARD"
