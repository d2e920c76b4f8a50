#!/usr/bin/env bash
# Empties the durable storage (bus/, db/data/, nas/) and the local run's logs back to the state of a fresh clone.
# Stop the cluster first.
set -euo pipefail
cd "$(dirname "$0")"
find bus db/data nas -mindepth 1 ! -path '*/.gitignore' -delete
rm -rf logs
