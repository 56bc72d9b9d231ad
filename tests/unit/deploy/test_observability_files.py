"""Alert rules (promtool check + unit tests) and the Grafana dashboard against the metrics the
code defines: a renamed metric breaks a panel or an alert here, not at 3 a.m."""

from __future__ import annotations

import json
import re
import subprocess

from config.settings import REPO_ROOT
from tests.system_tools import require_tool

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "medflow-dashboard.json"
METRIC = re.compile(r"\b(medflow_[a-z_]+?)(?:_bucket|_total|_count|_sum)?\b")
SOURCES = ("api/blueprints/metrics.py", "workers/metrics.py")


def test_alert_rules_check_and_pass_their_unit_tests() -> None:
    promtool = require_tool("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_dashboard_and_alerts_use_only_metrics_the_code_defines() -> None:
    defined = set()
    for source in SOURCES:
        defined |= set(re.findall(r'"(medflow_[a-z_]+)"', (REPO_ROOT / source).read_text()))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for expr in exprs for m in METRIC.findall(expr)}
    used |= set(METRIC.findall((PROMETHEUS / "alerts.yml").read_text()))
    assert used and used <= defined, used - defined
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("throughput", "queue depth", "queue age", "failures", "stage latency", "job"):
        assert topic in titles, topic
