"""The Kubernetes manifests, rendered per overlay (tests/unit/deploy/kustomize.py, checked
against kubectl's kustomize where kubectl exists) and checked offline:
against the Kubernetes schema (kubernetes-validate bundles it), and against the rules an
operator relies on (restricted pod security, probes, one collector, scaling, secrets)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import REPO_ROOT
from tests.unit.deploy.kustomize import render

OVERLAYS = sorted(
    p.parent for p in (REPO_ROOT / "deploy/k8s/overlays").glob("*/kustomization.yaml")
)
K8S_VERSION = "1.30.0"
CRDS = {"keda.sh/v1alpha1"}  # no schema bundled: checked by the rules below


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_the_python_renderer_agrees_with_kubectl_kustomize(overlay: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (no Debian package): the Python renderer is used")
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    theirs = {_key(doc): doc for doc in yaml.safe_load_all(out) if doc}
    ours = {_key(doc): doc for doc in render(overlay)}
    assert ours == theirs


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_every_resource_matches_the_kubernetes_schema(rendered: list[dict[str, Any]]) -> None:
    checked = 0
    for doc in rendered:
        if doc["apiVersion"] in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any error
        checked += 1
    assert checked >= 15


def test_pods_run_restricted_with_probes(rendered: list[dict[str, Any]]) -> None:
    for doc in _of(rendered, "Deployment", "Job"):
        pod = doc["spec"]["template"]["spec"]
        name = doc["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and int(security["runAsUser"]) > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), (name, image)
            if doc["kind"] == "Deployment":
                assert "readinessProbe" in container and "livenessProbe" in container, name


def test_exactly_one_collector_replaced_not_rolled(rendered: list[dict[str, Any]]) -> None:
    (collector,) = [d for d in _of(rendered, "Deployment") if _role(d) == "collector"]
    assert collector["spec"]["replicas"] == 1
    assert collector["spec"]["strategy"] == {"type": "Recreate"}


def test_each_worker_scales_on_its_own_queue_from_zero(rendered: list[dict[str, Any]]) -> None:
    workers = [d for d in _of(rendered, "Deployment") if _role(d) == "worker"]
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in _of(rendered, "ScaledObject")}
    budgets = {p["metadata"]["name"] for p in _of(rendered, "PodDisruptionBudget")}
    assert len(workers) >= 2
    for worker in workers:
        name, model = worker["metadata"]["name"], worker["metadata"]["labels"]["model"]
        triggers = scaled[name]["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"redis"}
        # The batch queue and the interactive lane: an urgent image wakes a model at zero too.
        lists = {t["metadata"]["listName"] for t in triggers}
        assert lists == {f"infer.{model}", f"infer.{model}.priority"}
        assert scaled[name]["spec"]["minReplicaCount"] == 0
        assert name in budgets
    assert "medflow-api" in budgets


def test_each_component_gets_only_its_secrets(rendered: list[dict[str, Any]]) -> None:
    expected_db = {
        "api": "medflow-db-app",
        "collector": "medflow-db-app",
        "migrate": "medflow-db-owner",
    }
    for doc in _of(rendered, "Deployment", "Job"):
        secrets = _secrets(doc)
        role = _role(doc)
        database = {s for s in secrets if s.startswith("medflow-db-")}
        assert database == ({expected_db[role]} if role in expected_db else set()), (role, secrets)
        if role in ("worker", "flower"):
            assert "medflow-metrics" not in secrets
        if role != "flower":
            assert "medflow-flower" not in secrets


def test_only_medflow_pods_reach_redis_and_postgres(rendered: list[dict[str, Any]]) -> None:
    policies = {
        p["spec"]["podSelector"].get("matchLabels", {}).get("app"): p
        for p in _of(rendered, "NetworkPolicy")
    }
    redis_from = policies["medflow-redis"]["spec"]["ingress"][0]["from"]
    assert redis_from == [{"podSelector": {"matchLabels": {"app": "medflow"}}}]
    postgres_from = policies["postgres"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    roles = next(e for e in postgres_from["matchExpressions"] if e["key"] == "role")
    assert set(roles["values"]) == {"api", "collector", "migrate"}
    assert any(
        not p["spec"]["podSelector"] and "ingress" not in p["spec"] for p in policies.values()
    )


def _of(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]


def _role(doc: dict[str, Any]) -> str:
    return str(doc["metadata"].get("labels", {}).get("role", ""))


def _secrets(doc: dict[str, Any]) -> set[str]:
    found = set()
    for container in doc["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                found.add(source["secretRef"]["name"])
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                found.add(ref["name"])
    return found


def test_the_manifests_render_the_files_on_disk() -> None:
    # Every file in the base is listed in its kustomization (a forgotten file never deploys).
    base = REPO_ROOT / "deploy/k8s/base"
    listed = set(yaml.safe_load((base / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in base.glob("*.yaml")} - {"kustomization.yaml"}
