#!/usr/bin/env bash
# Cross-build Paddle Lite's light API (the runtime that loads .nb files) for an ARM Linux board,
# plus wherry's small C interface over it. Normally run by `wherry targets build-lite`, which
# checks the prerequisites, picks the source, caches the result and packages it; it can also be
# run by hand:
#
#   build_lite.sh recipe ARCH                      print the cmake options (the build recipe)
#   build_lite.sh lib ARCH SRC WORK OUT            build libpaddle_light_api_shared.so from the
#                                                  Paddle Lite source tree SRC (a git tree at the
#                                                  pinned tag) in WORK; install it into OUT
#   build_lite.sh shim ARCH LIBDIR SHIM_SRC OUT TAG COMMIT
#                                                  compile the C interface against the library in
#                                                  LIBDIR; OUT gets the runtime folder's libraries
#
# ARCH: aarch64 (armv8) or armv7hf. Needs the Debian cross compiler (g++-aarch64-linux-gnu or
# g++-arm-linux-gnueabihf), cmake, make, git and python3. JOBS=N sets the parallel jobs.
set -euo pipefail

say() { echo "build-lite: $*" >&2; }

arch_settings() {
  case "$1" in
    aarch64) ABI=armv8; CROSS=aarch64-linux-gnu ;;
    armv7hf) ABI=armv7hf; CROSS=arm-linux-gnueabihf ;;
    *) say "unknown arch $1 (aarch64 or armv7hf)"; exit 2 ;;
  esac
}

# The light API ("tiny publish") for ARM Linux with the extra op set: without LITE_BUILD_EXTRA,
# kernels that ordinary models need (hard_swish, flatten_contiguous_range, ...) are missing and
# loading such a model aborts. LITE_WITH_EXCEPTION turns Lite's failed checks into C++ exceptions
# (reported by the C interface) instead of process aborts. Nothing here downloads anything: the
# flatbuffers headers ship pre-built in the source tree.
recipe() {
  echo "-DCMAKE_BUILD_TYPE=Release -DWITH_MKLDNN=OFF -DWITH_TESTING=OFF" \
       "-DLITE_WITH_ARM=ON -DLITE_WITH_X86=OFF -DARM_TARGET_OS=armlinux -DARM_TARGET_ARCH_ABI=$ABI" \
       "-DARM_TARGET_LANG=gcc -DLITE_BUILD_EXTRA=ON -DLITE_WITH_PYTHON=OFF -DLITE_WITH_CV=OFF" \
       "-DLITE_WITH_LOG=ON -DLITE_WITH_EXCEPTION=ON -DLITE_ON_TINY_PUBLISH=ON -DWITH_ARM_DOTPROD=ON" \
       "-DLITE_WITH_ARM82_FP16=OFF -DLITE_WITH_OPENCL=OFF -DLITE_WITH_NNADAPTER=OFF" \
       "target=paddle_light_api_shared"
}

build_lib() {
  local src=$1 work=$2 out=$3
  mkdir -p "$work" "$out"
  src=$(cd "$src" && pwd); work=$(cd "$work" && pwd)
  # Lite's CMake names the version from `git describe`: the tree must be a git tree at the tag.
  git -C "$src" describe --tags --exact-match >/dev/null 2>&1 || {
    say "$src is not a git tree at a tag (cmake takes the version from git describe)"; exit 2; }
  # As Lite's own build_linux.sh does: an empty generated-code file, and no stale op lists.
  mkdir -p "$work/lite/gen_code"
  touch "$work/lite/gen_code/__generated_code__.cc"
  rm -f "$src/lite/api/paddle_use_ops.h" "$src/lite/api/paddle_use_kernels.h"
  local options jobs=${JOBS:-$(nproc)}
  options=$(recipe)
  options=${options% target=*}
  say "cmake ($ABI, $CROSS-g++)"
  # Not part of the recipe (they change how, not what, is built): the Python that generates sources,
  # and parallel link-time optimization (Lite's -flto alone runs its 59 LTRANS jobs one by one).
  # shellcheck disable=SC2086  # the recipe is a list of words
  (cd "$work" && cmake "$src" $options -DPYTHON_EXECUTABLE="$(command -v python3)" \
      -DCMAKE_SHARED_LINKER_FLAGS="-flto=$jobs") > "$work/cmake.log" 2>&1 || {
    tail -n 30 "$work/cmake.log" >&2; say "cmake failed (full log: $work/cmake.log)"; exit 1; }
  local total
  total=$(grep -c 'Building CXX object' "$work/lite/api/CMakeFiles/PADDLELITE_OBJS.dir/build.make" 2>/dev/null || echo "?")
  say "compiling the light API with $jobs jobs (about $total sources; ~20 min on 2 cores)"
  # Progress: one line per 50 compiled sources, so a long build shows it is alive.
  local lib="$work/lite/api/libpaddle_light_api_shared.so"
  if ! (cd "$work" && make paddle_light_api_shared -j"$jobs" 2>&1) | tee "$work/make.log" | \
    awk '/Building CXX/ { n++; if (n % 50 == 0) { printf "build-lite: %d sources compiled\n", n > "/dev/stderr" } }
         /Linking CXX shared library/ { print "build-lite: linking (link-time optimization, a few minutes)" > "/dev/stderr" }' \
    || [ ! -f "$lib" ]; then
    grep -B2 -A8 -m3 'error' "$work/make.log" >&2 || tail -n 30 "$work/make.log" >&2
    say "make failed (full log: $work/make.log)"; exit 1
  fi
  mkdir -p "$out/include"
  "$CROSS-strip" --strip-unneeded -o "$out/libpaddle_light_api_shared.so" "$lib"
  cp "$src/lite/api/paddle_api.h" "$src/lite/api/paddle_place.h" "$out/include/"
  cp "$src/LICENSE" "$out/LICENSE.paddle-lite"
  say "library: $(du -h "$out/libpaddle_light_api_shared.so" | cut -f1) (stripped)"
}

# The C interface is a second library beside Lite's: RUNPATH $ORIGIN finds Lite and libgomp in
# the same folder. libgomp is linked here on purpose (--no-as-needed): Lite's library needs it but
# has no RUNPATH, and the loader resolves this library's dependencies first, from $ORIGIN.
build_shim() {
  local libdir=$1 shim=$2 out=$3 tag=$4 commit=$5
  mkdir -p "$out"
  "$CROSS-g++" -std=c++11 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wno-unused-function \
    -I "$libdir/include" -DWHERRY_LITE_TAG="\"$tag\"" -DWHERRY_LITE_COMMIT="\"$commit\"" \
    "$shim" -o "$out/libwherry_lite.so" \
    -L "$libdir" -lpaddle_light_api_shared -Wl,--no-as-needed -lgomp -Wl,--as-needed \
    -Wl,-rpath,'$ORIGIN' -Wl,-z,noexecstack
  "$CROSS-strip" --strip-unneeded "$out/libwherry_lite.so"
  cp "$libdir/libpaddle_light_api_shared.so" "$out/"
  cp -L "$("$CROSS-gcc" -print-file-name=libgomp.so.1)" "$out/libgomp.so.1"
}

command=${1:-}
case "$command" in
  recipe) arch_settings "${2:?arch}"; recipe ;;
  lib) arch_settings "${2:?arch}"; build_lib "${3:?source}" "${4:?work dir}" "${5:?out dir}" ;;
  shim) arch_settings "${2:?arch}"; build_shim "${3:?lib dir}" "${4:?shim source}" "${5:?out dir}" "${6:?tag}" "${7:?commit}" ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
