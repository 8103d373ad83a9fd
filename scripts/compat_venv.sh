#!/usr/bin/env bash
# Builds (or reuses) a virtual environment with the plugin's requirements and
# one given FiftyOne release, beside .venv:
#
#   scripts/compat_venv.sh 1.14.2          -> .venv-fo-1.14.2
#
# The plugin's requirements (requirements-dev.txt) are installed with
# fiftyone==<version> replacing the range of requirements.txt, plus the
# release's own transitive pins from tests/compat/constraints-<version>.txt
# when that file exists (pins that an older release needs to import at all
# but that are not in requirements.txt because 1.22 does not want them).
# pip's wheel cache (~/.cache/pip) makes a rebuild a matter of seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export FIFTYONE_DO_NOT_TRACK=true

version=${1:?usage: scripts/compat_venv.sh <fiftyone-version> [venv-dir]}
venv=${2:-.venv-fo-$version}
python=${PYTHON:-python3}
constraints=tests/compat/constraints-$version.txt
stamp=$venv/.installed

if [ -f "$stamp" ] && [ "$stamp" -nt requirements.txt ] && [ "$stamp" -nt requirements-dev.txt ] \
        && { [ ! -f "$constraints" ] || [ "$stamp" -nt "$constraints" ]; }; then
    exit 0
fi

started=$(date +%s)
reqs=$(mktemp -d)
trap 'rm -rf "$reqs"' EXIT
# requirements.txt with its fiftyone line replaced by the exact release
sed -E "s/^fiftyone([<>=!~ ].*)?$/fiftyone==$version/" requirements.txt >"$reqs/requirements.txt"
grep -q "^fiftyone==$version\$" "$reqs/requirements.txt" || {
    echo "requirements.txt has no fiftyone line to replace" >&2; exit 1; }
sed "s#^-r requirements.txt#-r $reqs/requirements.txt#" requirements-dev.txt >"$reqs/requirements-dev.txt"

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
args=(-r "$reqs/requirements-dev.txt")
if [ -f "$constraints" ]; then
    args+=(-c "$constraints")
fi
# (pip's find-links/extra-index warnings about absent local folders are noise)
"$venv/bin/pip" install --quiet "${args[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# importing fiftyone and its App server is what transitive pins break
FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:1 "$venv/bin/python" -c "
import fiftyone, fiftyone.server.main
assert fiftyone.__version__ == '$version', fiftyone.__version__"
touch "$stamp"
echo "$venv: fiftyone $version installed in $(( $(date +%s) - started )) s"
