#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (packages, libvirtd),
# then runs every test, including the system tests against the real qemu:///system.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh

# One lab at a time on small hosts: system tests that boot guests serialise themselves, and
# cargo runs test binaries one after another.
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets "$@"
