#!/usr/bin/env bash
# System libraries the Python stack needs: open3d imports only with libusb-1.0 present.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing libusb-1.0-0 (needed by open3d)"
  apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null && apt-get install -y -qq libusb-1.0-0 >/dev/null; }
else
  echo "warning: libusb-1.0 is missing; open3d will not import." >&2
  echo "  install it with: sudo apt-get install libusb-1.0-0" >&2
fi
