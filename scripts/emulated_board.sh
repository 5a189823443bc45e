#!/usr/bin/env bash
# Set up (once, cached) the emulated aarch64 board used by `--device emulated-aarch64`.
exec bash "$(dirname "$0")/../targets/devices/emulated_board.sh" "$@"
