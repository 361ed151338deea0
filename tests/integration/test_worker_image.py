"""The worker image's install, without a container engine: infra/worker/install.sh into a clean venv.

The Dockerfile runs ``install.sh build`` (the wheel and the locked requirements) and ``install.sh install`` (a
venv: the requirements with their hashes, then the wheel); this test runs the same script, then runs the
installed ``loyalty`` the way the image does: the image's environment (its ``ENV`` block, with its writable
folder moved to a temporary one), from an empty read-only working directory, with no repository in sight.
A dry daily run that renders messages proves the catalog (campaigns, templates) came with the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.shops import AS_OF, tiny_shop, write_shop

DOCKERFILE = REPO_ROOT / "infra" / "worker" / "Dockerfile"
INSTALL = REPO_ROOT / "infra" / "worker" / "install.sh"
# the image's paths: the venv, and the one folder its processes write to
IMAGE_VENV, IMAGE_WRITABLE = "/opt/loyalty", "/var/lib/loyalty"


def _uv() -> str:
    """The uv the Makefile uses: the one on PATH, else the pinned one in .tools/."""
    found = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is missing: `make sync` installs it"
    return found


def _image_env(venv: Path, writable: Path) -> dict[str, str]:
    """The Dockerfile's ``ENV`` settings, pointed at this venv and this writable folder, and nothing else."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    settings = [line.split()[1:] for line in text.splitlines() if line.startswith("ENV ")]
    env = {"HOME": str(writable / "home"), "LANG": "C.UTF-8"}
    for pair in (item for block in settings for item in block):
        key, value = pair.split("=", 1)
        env[key] = value.replace("$PATH", "/usr/bin:/bin").replace(IMAGE_VENV, str(venv))
        env[key] = env[key].replace(IMAGE_WRITABLE, str(writable))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv made by install.sh from this working copy (the uv cache makes a re-run take seconds)."""
    root = tmp_path_factory.mktemp("worker-image")
    base_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    env = {**os.environ, "UV": _uv(), "PYTHON": str(base_python)}
    for step in (["build", str(REPO_ROOT), str(root / "dist")], ["install", str(root / "dist"), str(root / "venv")]):
        done = subprocess.run(["sh", str(INSTALL), *step], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return root / "venv"


def _in_image(
    venv: Path, tmp_path: Path, *args: str, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv as the image runs it: its environment, an empty read-only working directory."""
    writable, workdir = tmp_path / "writable", tmp_path / "workdir"
    env = _image_env(venv, writable)
    for key in ("HOME", "PREFECT_HOME", "TMPDIR", "MPLCONFIGDIR", "LOYALTY_STATE_DIR", "LOYALTY_OUTPUT_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    workdir.mkdir(exist_ok=True)
    workdir.chmod(0o555)
    return subprocess.run(
        list(args), cwd=cwd or workdir, env={**env, **extra}, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_dockerfile_installs_with_the_script_this_test_runs() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")

    assert re.search(r"sh /dist/install\.sh build /src /dist\n", dockerfile)
    assert re.search(rf"sh /dist/install\.sh install /dist {IMAGE_VENV}\n", dockerfile)
    assert f"ENV PATH={IMAGE_VENV}/bin:$PATH" in dockerfile


def test_every_file_the_dockerfile_copies_is_let_into_the_build_context() -> None:
    ignore = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    let_in = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    # COPY <source>... <destination>, from the build context (a COPY --from=<stage> copies from a stage)
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ") and "--from=" not in line]
    sources = {source.rstrip("/") for sources in copies for source in sources if not source.startswith("--")}

    assert "*" in ignore  # everything else stays out: .venv, .env, state and run folders
    assert sources and sources <= let_in


def test_the_installed_command_answers_and_the_ecs_worker_type_is_there(installed: Path, tmp_path: Path) -> None:
    helped = _in_image(installed, tmp_path, "loyalty", "--help")
    worker = _in_image(
        installed, tmp_path, "python", "-c", "from prefect_aws.workers import ECSWorker; print(ECSWorker.type)"
    )

    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout and "serve" in helped.stdout
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.strip() == "ecs"  # what `prefect worker start --type ecs` looks up


def test_a_flow_run_task_finds_every_deployment_entrypoint_in_the_images_code_folder(
    installed: Path, tmp_path: Path
) -> None:
    # the ECS deployments' pull step sets the working directory to the installed code (infra/README.md)
    code = installed / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    entrypoints = [d["entrypoint"] for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]]
    load = "import sys; from prefect.flows import load_flow_from_entrypoint as load; [load(e) for e in sys.argv[1:]]"

    loaded = _in_image(installed, tmp_path, "python", "-c", load, *entrypoints, cwd=code)

    assert entrypoints and loaded.returncode == 0, loaded.stderr


def test_the_image_carries_no_dev_tools(installed: Path) -> None:
    tools = {"pytest", "ruff", "mypy", "hadolint", "lint-imports", "playwright"}

    assert tools.isdisjoint(p.name for p in (installed / "bin").iterdir())


def test_the_installed_catalog_is_the_default_and_the_settings_still_override_it(
    installed: Path, tmp_path: Path
) -> None:
    show = "from tasks.kernel.settings import Settings; s = Settings(); print(s.campaigns_dir); print(s.templates_dir)"
    own = tmp_path / "own"

    default = _in_image(installed, tmp_path, "python", "-c", show)
    overridden = _in_image(
        installed,
        tmp_path,
        "python",
        "-c",
        show,
        LOYALTY_CAMPAIGNS_DIR=str(own / "campaigns"),
        LOYALTY_TEMPLATES_DIR=str(own / "templates"),
    )

    assert default.returncode == 0, default.stderr
    campaigns, templates = (Path(line) for line in default.stdout.splitlines())
    assert campaigns.is_relative_to(installed) and (campaigns / "win_back.yaml").is_file()
    assert templates.is_relative_to(installed) and (templates / "win_back" / "ru" / "subject.txt.j2").is_file()
    assert overridden.stdout.splitlines() == [str(own / "campaigns"), str(own / "templates")]


def test_the_installed_wheel_runs_a_dry_day_and_renders_from_its_own_catalog(installed: Path, tmp_path: Path) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")  # C1 lapsed: the win-back is due

    ran = _in_image(
        installed,
        tmp_path,
        "loyalty",
        "run",
        "--data",
        str(shop),
        "--as-of",
        AS_OF,
        "--now",
        f"{AS_OF}T07:00:00Z",
        "--dry-run",
        "--json",
    )

    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["dry_run"] is True and summary["sent"] == 0
    assert summary["to_send_by_campaign"].get("win_back") == 1
    assert summary["rendered"] == summary["to_send"] > 0
    email = Path(summary["run_dir"]) / "outbox" / "win_back" / "C1-email.html"
    html = email.read_text(encoding="utf-8")
    assert '<html lang="ru">' in html and "Здравствуйте" in html  # the wheel's Russian win-back template
    assert Path(summary["run_dir"]).is_relative_to(tmp_path / "writable")
    assert list((tmp_path / "workdir").iterdir()) == []  # nothing written to the working directory
    assert list((tmp_path / "writable" / "home").iterdir()) == []  # nor to the home folder
