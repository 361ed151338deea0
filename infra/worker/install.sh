#!/bin/sh
# Install Loyalty Flows from its wheel and the locked requirements: the one recipe the worker image
# (infra/worker/Dockerfile) runs, and tests/integration/test_worker_image.py runs into a clean venv.
#
#   install.sh build <project> <dist>   the wheel and the locked requirements (uv.lock, with hashes) into <dist>
#   install.sh install <dist> <venv>    a venv at <venv>: the requirements (--require-hashes), then the wheel (--no-deps)
#
# UV is the pinned uv (default: uv on PATH); PYTHON the venv's interpreter (default: python3).
# The requirements are the runtime dependencies and the `worker` extra (prefect-aws): no dev tools.
set -eu

uv=${UV:-uv}
# the cache may sit on another filesystem (a build cache mount, a tmp folder): copy, do not hard-link
export UV_LINK_MODE=copy
# the venv uses the interpreter given, never one uv would download
export UV_PYTHON_DOWNLOADS=never

case "${1:-}" in
build)
    project=$2
    dist=$3
    "$uv" build --quiet --wheel --out-dir "$dist" "$project"
    "$uv" export --quiet --project "$project" --frozen --no-dev --extra worker --no-emit-project \
        --no-header --output-file "$dist/requirements.txt"
    ;;
install)
    dist=$2
    venv=$3
    "$uv" venv --quiet --python "${PYTHON:-python3}" "$venv"
    "$uv" pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps \
        --requirements "$dist/requirements.txt"
    # the project itself: its dependencies are exactly the locked ones above
    "$uv" pip install --quiet --python "$venv/bin/python" --no-deps "$dist"/loyalty_flows-*.whl
    ;;
*)
    echo "usage: install.sh build <project> <dist> | install.sh install <dist> <venv>" >&2
    exit 2
    ;;
esac
