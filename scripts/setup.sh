#!/usr/bin/env bash
# Installs the Debian packages luagan builds against, if any is missing (through sudo when
# not root). Swift itself must already be on PATH.
set -euo pipefail
packages=(liblua5.4-dev libopenblas-dev libpng-dev libturbojpeg0-dev zlib1g-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v swift >/dev/null || { echo "swift is not on PATH (luagan needs Swift 5.10 or later)" >&2; exit 1; }
