#!/usr/bin/env bash
# Installs what ftbox's build, demo and tests need on Debian/Ubuntu. Idempotent:
# it only calls apt-get when a package is missing.
set -euo pipefail

pkgs=(
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf binutils-riscv64-unknown-elf  # bare-metal guests
  qemu-system-misc     # the reference RISC-V machine (differential tests, bench baseline)
  qemu-user-static     # runs the arm64 determinism check on amd64
  device-tree-compiler # dtc checks our device tree
  iproute2 iputils-ping tcpdump make bpftool
  jq util-linux        # the lab, the demo and tools/verify read `ftbox status --json` with jq; setsid
)

if [ "$(id -u)" -ne 0 ]; then
  echo "tools/deps.sh: run as root (sudo) to install packages" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: the module needs the version go.mod names.
need=$(awk '/^go /{print $2}' "$(dirname "$0")/../go.mod")
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
if ! command -v go >/dev/null 2>&1; then
  echo "tools/deps.sh: Go $need or newer is required (https://go.dev/doc/install); install it to /usr/local/go" >&2
  exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "tools/deps.sh: Go $have found, $need or newer is required" >&2
  exit 1
fi
go mod download
