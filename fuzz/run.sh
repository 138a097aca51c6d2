#!/usr/bin/env bash
# Builds and runs the fuzz targets one after the other, in one process each, for FUZZ_SECONDS
# (default 600): `make fuzz`, or `fuzz/run.sh [TARGET...]`. Needs `cargo install cargo-fuzz`;
# RUSTC_BOOTSTRAP=1 lets a stable toolchain take the sanitizer flags cargo-fuzz passes.
# Corpora grow in fuzz/corpus/TARGET, seeded from fuzz/seeds, fuzz/regressions (what earlier
# runs found; tests/images.rs and tests/hostile_weights.rs replay them) and the repository's
# own image and weights files. A crash or slow input stops the run; it is in fuzz/artifacts.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
# libtorch is linked dynamically and the fuzz binaries carry no rpath to it.
export LD_LIBRARY_PATH="$PWD/.libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# What libtorch allocates for the whole process is not a leak worth stopping for.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(image_decode jpeg_decode weights_file)

mkdir -p fuzz/corpus/image_decode fuzz/corpus/jpeg_decode fuzz/corpus/weights_file
cp -n fuzz/seeds/image/* fuzz/regressions/image_decode/* assets/digits/*.png fuzz/corpus/image_decode/
cp -n fuzz/seeds/image/*.jpg fuzz/regressions/image_decode/*.jpg fuzz/corpus/jpeg_decode/
cp -n fuzz/seeds/weights/* fuzz/regressions/weights_file/* weights/lenet5.safetensors fuzz/corpus/weights_file/

# Longer inputs teach the fuzzer nothing new; a whole LeNet-5 file is 242 KiB.
declare -A max_len=([image_decode]=16384 [jpeg_decode]=16384 [weights_file]=262144)
for target in "${targets[@]}"; do
  cargo fuzz run --codegen-units 16 "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$target]}" -print_final_stats=1
done
