#!/usr/bin/env python3
"""Offline checks of the monitoring files against the rendered manifests (deploy/k8s/validate).

  dashboard   grafana/ticketing.json parses; every panel (rows aside) has targets, each with a
              PromQL expression that selects at least one metric, every selector written
              `name{...}` or `name[...]` (nothing bare, so names can be read reliably), every
              name in exported-metrics.txt (which a Rust test holds equal to what a started
              system exports); datasources are the ${datasource} variable
  scrape      every Deployment of gateway, queue, catalog and reservation: pod annotations
              prometheus.io/scrape "true", prometheus.io/path /metrics, prometheus.io/port
              equal to its container port named `metrics`; the service's *_METRICS_ADDR (env or
              rendered ConfigMap) listens on that port on all interfaces; a NetworkPolicy
              selecting the pod admits that port
  prometheus  the scrape configuration files parse and keep annotated pods

Usage: check.py [--dashboard FILE] RENDERED.yaml...   (the monitoring directory is this file's;
       --dashboard checks another dashboard file, as validate's negative test does)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SERVICES = {"gateway": "GATEWAY", "queue": "QUEUE", "catalog": "CATALOG", "reservation": "RESERVATION"}
SELECTOR = re.compile(r"(?<![\w$:])([A-Za-z_:][\w:]*)\s*([{\[])")
FUNCTION = re.compile(r"(?<![\w$:])[A-Za-z_][\w]*\s*\(")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
failures: list[str] = []


def fail(rule: str, where: str, message: str) -> None:
    failures.append(f"FAIL [{rule}] {where}: {message}")


def strip_promql(expr: str) -> str:
    """What is left of an expression once selectors, calls, groupings, strings, numbers and
    variables are gone: operators and brackets only, or a bare identifier."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = SELECTOR.sub(" ", text)
    text = GROUPING.sub(" ", text)
    text = FUNCTION.sub("(", text)
    text = re.sub(r"\$\w+", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", " ", text)
    text = re.sub(r"\b(and|or|unless|bool|offset)\b", " ", text)
    return text


def check_dashboard(path: Path) -> int:
    exported = {line.strip() for line in (HERE / "exported-metrics.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail("dashboard", path.name, f"does not parse: {e}")
        return 0
    panels = dashboard.get("panels") or []
    if not panels:
        fail("dashboard", path.name, "no panels")
    queries = 0
    for panel in panels:
        if panel.get("type") == "row":
            continue
        where = f"{path.name} panel {panel.get('title')!r}"
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            fail("dashboard", where, "datasource is not the ${datasource} variable")
        targets = panel.get("targets") or []
        if not targets:
            fail("dashboard", where, "no targets")
        for target in targets:
            expr = target.get("expr") or ""
            queries += 1
            names = {m.group(1) for m in SELECTOR.finditer(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr))}
            if not names:
                fail("dashboard", where, f"{expr!r} selects no metric")
            for name in sorted(names - exported):
                fail("dashboard", where, f"{name} is not exported by any service (exported-metrics.txt)")
            leftover = re.findall(r"[A-Za-z_][\w:]*", strip_promql(expr))
            if leftover:
                fail("dashboard", where, f"bare identifiers {leftover} in {expr!r}: write selectors as name{{...}}")
    return queries


def check_scrape(objects: list[dict], source: str) -> int:
    def ns(o: dict) -> str:
        return (o.get("metadata") or {}).get("namespace") or "default"

    config_maps = {(ns(o), o["metadata"]["name"]): o.get("data") or {} for o in objects if o.get("kind") == "ConfigMap"}
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"]
    seen = 0
    for obj in objects:
        if obj.get("kind") != "Deployment" or obj["metadata"]["name"] not in SERVICES:
            continue
        seen += 1
        name = obj["metadata"]["name"]
        where = f"{source} Deployment/{ns(obj)}/{name}"
        template = obj["spec"]["template"]
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        container = next((c for c in template["spec"]["containers"] if c.get("name") == name), None)
        if container is None:
            fail("scrape", where, f"no container named {name}")
            continue
        port = next((p.get("containerPort") for p in container.get("ports") or [] if p.get("name") == "metrics"), None)
        if port is None:
            fail("scrape", where, "no container port named metrics")
            continue
        if annotations.get("prometheus.io/scrape") != "true":
            fail("scrape", where, 'pod annotation prometheus.io/scrape is not "true"')
        if annotations.get("prometheus.io/path") != "/metrics":
            fail("scrape", where, "pod annotation prometheus.io/path is not /metrics")
        if annotations.get("prometheus.io/port") != str(port):
            fail("scrape", where, f"pod annotation prometheus.io/port is not {port} (the metrics port)")
        env: dict[str, str] = {}
        for source_ref in container.get("envFrom") or []:
            ref = source_ref.get("configMapRef")
            if ref:
                env.update({k: str(v) for k, v in config_maps.get((ns(obj), ref.get("name")), {}).items()})
        env.update({e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e})
        variable = f"{SERVICES[name]}_METRICS_ADDR"
        if env.get(variable) != f"0.0.0.0:{port}":
            fail("scrape", where, f"{variable} is {env.get(variable)!r}, not 0.0.0.0:{port} (the default listens on 127.0.0.1 only)")
        admitted = False
        for policy in policies:
            if ns(policy) != ns(obj):
                continue
            selector = (policy["spec"].get("podSelector") or {}).get("matchLabels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            for rule in policy["spec"].get("ingress") or []:
                if any(p.get("port") in (port, "metrics") for p in rule.get("ports") or []):
                    admitted = True
        if not admitted:
            fail("scrape", where, f"no NetworkPolicy admits the metrics port {port}")
    if seen != len(SERVICES):
        fail("scrape", source, f"{seen} of the {len(SERVICES)} service Deployments rendered")
    return seen


def check_prometheus() -> None:
    for path in sorted((HERE / "prometheus").glob("*.yaml")):
        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            fail("prometheus", path.name, f"does not parse: {e}")
            continue
        jobs = config.get("scrape_configs") or []
        if not jobs:
            fail("prometheus", path.name, "no scrape_configs")
        for job in jobs:
            if not job.get("job_name"):
                fail("prometheus", path.name, "a scrape config without job_name")


def main() -> int:
    args = sys.argv[1:]
    dashboard = HERE / "grafana/ticketing.json"
    if args[:1] == ["--dashboard"] and len(args) >= 2:
        dashboard, args = Path(args[1]), args[2:]
    queries = check_dashboard(dashboard)
    check_prometheus()
    deployments = 0
    for rendered in args:
        with open(rendered) as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        deployments += check_scrape(objects, Path(rendered).name)
    for line in failures:
        print(line)
    if failures:
        print(f"monitoring: {len(failures)} violation(s)")
        return 1
    print(f"monitoring: dashboard parses, {queries} queries select only exported metrics; "
          f"{deployments} service Deployments scraped on their metrics port and admitted by a NetworkPolicy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
