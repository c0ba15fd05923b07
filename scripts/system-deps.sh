#!/usr/bin/env bash
# System packages the project uses, from Debian: libusb-1.0 (open3d imports only with it present)
# and Debian's Fashion-MNIST files (the real-data test of FashionMNISTDataModule reads them; nothing
# is downloaded at run time).
set -euo pipefail
missing=()
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || missing+=(libusb-1.0-0)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (Debian packages: open3d's libusb, Fashion-MNIST test data)"
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    echo "warning: could not install ${missing[*]}; open3d or the Fashion-MNIST data test may skip" >&2
else
  echo "warning: missing Debian packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install ${missing[*]}" >&2
fi
