#!/bin/sh
# Install the Cortex-M cross compiler (Debian's gcc-arm-none-eabi) and OpenSSH server where apt is available.
# Tests that compile for Cortex-M skip with a clear reason where this cannot run.
set -e
if command -v arm-none-eabi-gcc >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then echo "apt-get not available"; exit 1; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-arm-none-eabi libnewlib-arm-none-eabi >/dev/null
