#!/bin/sh
# Install the native tools edgebuild's mcu firmware stage and its tests use, where apt is available:
#   gcc-arm-none-eabi               arm-none-eabi-gcc/g++/size/nm (Cortex-M cross compiler)
#   libnewlib-arm-none-eabi         C library for bare-metal Cortex-M
#   libstdc++-arm-none-eabi-newlib  C++ runtime the TensorFlow Lite Micro firmware links
#   qemu-system-arm                 runs the firmware on an emulated Arm board (mps2-an386)
#   chromium                        headless browser the report.html tests drive through Playwright
#                                   (Playwright's own browser download is not used)
# Each one is checked on its own and only the missing ones are installed (no early exit because one
# tool exists). Tests that need a firmware tool that could not be installed skip with a clear reason;
# the report.html browser tests fail with the install command instead (they are not optional).
set -e
have_pkg() {  # Debian package installed? (falls back to "no" without dpkg-query)
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing=""
command -v arm-none-eabi-g++ >/dev/null 2>&1 && command -v arm-none-eabi-size >/dev/null 2>&1 \
  || have_pkg gcc-arm-none-eabi || missing="$missing gcc-arm-none-eabi"
have_pkg libnewlib-arm-none-eabi || missing="$missing libnewlib-arm-none-eabi"
have_pkg libstdc++-arm-none-eabi-newlib || missing="$missing libstdc++-arm-none-eabi-newlib"
command -v qemu-system-arm >/dev/null 2>&1 || missing="$missing qemu-system-arm"
command -v chromium >/dev/null 2>&1 || have_pkg chromium || missing="$missing chromium"
if [ -z "$missing" ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not available: install$missing by other means"; exit 1
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "installing:$missing"
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
