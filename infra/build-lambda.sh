#!/bin/sh
# Build the unsubscribe Lambda's zip (infra/loyalty.yaml: UnsubscribeCodeBucket / UnsubscribeCodeKey):
# the project's wheel and, at their locked versions (uv.lock), only what the handler imports
# (tasks.consent.lambda_handler: mangum, starlette, pydantic, pydantic-settings, email-validator, boto3) and
# their dependencies, as Linux x86_64 manylinux wheels for the python3.11 runtime. No pandas, no Prefect.
# boto3 is pinned too rather than the runtime's: the code is tested with the locked one.
#
#   infra/build-lambda.sh [out.zip]      default: loyalty-unsubscribe.zip in the current folder
#
# UV is the pinned uv (default: uv on PATH); PYTHON writes the zip (default: python3).
# tests/integration/test_worker_image.py builds it and answers a request with the unzipped handler.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
out=$(realpath "${1:-loyalty-unsubscribe.zip}")
uv=${UV:-uv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the wheel, as the worker image builds it
UV=$uv sh "$here/worker/install.sh" build "$project" "$work/dist"
# every locked version, as constraints: the handler's few packages resolve to exactly these
"$uv" export --quiet --project "$project" --frozen --no-dev --no-emit-project --no-hashes --no-header \
    --output-file "$work/locked.txt"
"$uv" pip install --quiet --target "$work/package" --python-platform x86_64-manylinux2014 --python-version 3.11 \
    --only-binary :all: --link-mode copy --constraints "$work/locked.txt" \
    mangum starlette pydantic pydantic-settings email-validator boto3
"$uv" pip install --quiet --target "$work/package" --python-platform x86_64-manylinux2014 --python-version 3.11 \
    --no-deps --link-mode copy "$work/dist"/loyalty_flows-*.whl
rm -rf "$work/package/bin"

"${PYTHON:-python3}" - "$work/package" "$out" <<'EOF'
import sys
import zipfile
from pathlib import Path

package, out = Path(sys.argv[1]), Path(sys.argv[2])
with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            archive.write(path, path.relative_to(package).as_posix())
EOF
echo "$out"
