#!/usr/bin/env python3
"""Offline checks of rendered Kubernetes manifests (run by deploy/k8s/validate).

1. Schema: every object validates against the Kubernetes OpenAPI schemas of each requested
   version (kubernetes-validate, strict: unknown fields are errors; an unknown kind is an error
   too, since this system uses no custom resources).
2. Rules, for every container of every pod template (Deployment, StatefulSet, DaemonSet,
   ReplicaSet, Job, CronJob, Pod):
     image-tag        an explicit tag or digest, never `latest`
     probes           readiness and liveness probes (long-running workloads; a Job's containers
                      run to completion and are bounded by `job-deadline` instead)
     job-deadline     Jobs and CronJobs set activeDeadlineSeconds
     resources        requests and limits for both cpu and memory (init containers too)
     non-root         runAsNonRoot: true and no runAsUser 0 (pod or container level)
     read-only-root   readOnlyRootFilesystem: true
     no-privilege-escalation  allowPrivilegeEscalation: false
     drop-all-capabilities    capabilities.drop contains ALL
     seccomp          seccompProfile RuntimeDefault or Localhost (pod or container level)
     host-access      no privileged containers, hostNetwork, hostPID, hostIPC or hostPath
   and across objects:
     references       ConfigMaps/Secrets used by pods exist in the render (or are declared
                      external with --external-secret); Services, PodDisruptionBudgets and
                      HorizontalPodAutoscalers select or target something that exists; named
                      probe ports exist on the container
     hpa-replicas     a Deployment scaled by an HPA does not also set spec.replicas (every
                      re-apply would reset the HPA's count)
     gateway-auth     every container named `gateway` sets GATEWAY_AUTH (env or a rendered
                      ConfigMap) to `trusted` or `jwt`; with `jwt`, GATEWAY_JWT_ISSUER,
                      GATEWAY_JWT_AUDIENCE and exactly one JWKS source (GATEWAY_JWT_JWKS_URL,
                      https, or GATEWAY_JWT_JWKS_FILE) are set; with --gateway-auth MODE the
                      mode must be MODE (validate requires `jwt` of the prod overlay)
     grpc-discovery   a `*_URL` in a ConfigMap that names a rendered Service's gRPC port
                      (appProtocol grpc) is `dns:///<service>:<port>` and that Service is
                      headless (clusterIP: None): the clients resolve every ready pod and
                      balance per call; a ClusterIP's one virtual IP, or an http:// URL to one
                      name, would pin each long-lived HTTP/2 connection to one pod

There are no exemptions: every shipped object passes every rule.

Usage:
  check.py [--k8s-version 1.30 ...] [--external-secret NAME ...] [--gateway-auth jwt] FILE...
                                                                           check files
  check.py --selftest DIR                                                  negative tests
A self-test fixture names on its first line the one rule it breaks (`# expect: probes`) or
`# expect: ok`; the self-test fails unless every fixture is judged exactly so.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
RUN_TO_COMPLETION = {"Job", "CronJob"}
DEFAULT_VERSIONS = ["1.30"]


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"FAIL [{self.rule}] {self.where}: {self.message}"


class LoadError(Exception):
    pass


def load(paths: list[Path]) -> list[tuple[Path, dict]]:
    objects = []
    for path in paths:
        try:
            with path.open() as f:
                for doc in yaml.safe_load_all(f):
                    if doc:
                        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                            raise LoadError(f"{path}: a document without kind/apiVersion")
                        objects.append((path, doc))
        except (OSError, yaml.YAMLError) as e:
            raise LoadError(f"{path}: {e}") from e
    return objects


def name_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')}/{ns}/{name}" if ns else f"{obj.get('kind', '?')}/{name}"


# ---- schema -----------------------------------------------------------------------------------

def schema_violations(objects: list[tuple[Path, dict]], versions: list[str]) -> list[Violation]:
    from kubernetes_validate import utils as kv

    # The library re-reads its (large) shared definitions for every object; read each once.
    if not hasattr(kv.schema_contents, "cache_info"):
        kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
    out = []
    for path, obj in objects:
        for version in versions:
            where = f"{path.name} {name_of(obj)} (Kubernetes {version})"
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as e:
                at = ".".join(str(p) for p in e.path) or "(root)"
                out.append(Violation("schema", where, f"{at}: {e.message}"))
            except kv.SchemaNotFoundError as e:
                out.append(Violation("schema", where, e.message))
            except kv.VersionNotSupportedError as e:
                out.append(Violation("schema", where, e.message))
    return out


# ---- rules --------------------------------------------------------------------------------------

def pod_spec_of(obj: dict) -> dict | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in POD_TEMPLATE_KINDS:
        return (spec.get("template") or {}).get("spec")
    return None


def pod_labels_of(obj: dict) -> dict:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


IMAGE_RE = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[A-Za-z0-9]+:[A-Fa-f0-9]{32,}))?$")


def image_problem(image: str | None) -> str | None:
    if not image:
        return "no image"
    m = IMAGE_RE.match(image)
    # A ':' inside the last path segment is a tag; one before a '/' is a registry port.
    if not m or "/" in (m.group("tag") or ""):
        return f"cannot parse image {image!r}"
    tag, digest = m.group("tag"), m.group("digest")
    if tag == "latest":
        return f"image {image!r} uses the `latest` tag; pin a version"
    if not tag and not digest:
        return f"image {image!r} has no tag (means `latest`); pin a version or digest"
    return None


def effective(container: dict, pod: dict, key: str):
    """A securityContext field: the container's value wins over the pod's."""
    c = (container.get("securityContext") or {}).get(key)
    return c if c is not None else (pod.get("securityContext") or {}).get(key)


def container_violations(obj: dict, pod: dict, container: dict, init: bool) -> list[Violation]:
    out = []
    kind = "init container" if init else "container"
    where = f"{name_of(obj)} {kind} {container.get('name', '?')}"

    def fail(rule: str, message: str) -> None:
        out.append(Violation(rule, where, message))

    problem = image_problem(container.get("image"))
    if problem:
        fail("image-tag", problem)

    if not init and obj.get("kind") not in RUN_TO_COMPLETION:
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                fail("probes", f"no {probe}")

    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        for res in ("cpu", "memory"):
            if values.get(res) in (None, ""):
                fail("resources", f"no resources.{section}.{res}")

    if effective(container, pod, "runAsNonRoot") is not True:
        fail("non-root", "runAsNonRoot is not true")
    if effective(container, pod, "runAsUser") == 0:
        fail("non-root", "runAsUser is 0 (root)")

    sc = container.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        fail("read-only-root", "readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail("no-privilege-escalation", "allowPrivilegeEscalation is not false")
    drops = [str(c).upper() for c in ((sc.get("capabilities") or {}).get("drop") or [])]
    if "ALL" not in drops:
        fail("drop-all-capabilities", "capabilities.drop does not contain ALL")
    if sc.get("privileged") is True:
        fail("host-access", "privileged container")
    seccomp = effective(container, pod, "seccompProfile") or {}
    if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
        fail("seccomp", "seccompProfile type is not RuntimeDefault (or Localhost)")

    port_names = {p.get("name") for p in container.get("ports") or [] if p.get("name")}
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(probe_name) or {}
        for handler in ("httpGet", "tcpSocket"):
            port = (probe.get(handler) or {}).get("port")
            if isinstance(port, str) and not port.isdigit() and port not in port_names:
                fail("references", f"{probe_name} uses port {port!r}, which the container does not name")
    return out


def workload_violations(obj: dict) -> list[Violation]:
    pod = pod_spec_of(obj)
    if pod is None:
        return []
    out = []
    where = name_of(obj)
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            out.append(Violation("host-access", where, f"{flag} is set"))
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            out.append(Violation("host-access", where, f"volume {volume.get('name')!r} is a hostPath"))
    if obj.get("kind") == "Job" and not (obj.get("spec") or {}).get("activeDeadlineSeconds"):
        out.append(Violation("job-deadline", where, "no spec.activeDeadlineSeconds"))
    if obj.get("kind") == "CronJob":
        job_spec = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        if not job_spec.get("activeDeadlineSeconds"):
            out.append(Violation("job-deadline", where, "no jobTemplate.spec.activeDeadlineSeconds"))
    for container in pod.get("initContainers") or []:
        out += container_violations(obj, pod, container, init=True)
    containers = pod.get("containers") or []
    if not containers:
        out.append(Violation("probes", where, "no containers"))
    for container in containers:
        out += container_violations(obj, pod, container, init=False)
    return out


def pod_references(pod: dict):
    """(kind, name, optional) of every ConfigMap and Secret a pod spec uses."""
    for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        for source in container.get("envFrom") or []:
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    yield kind, source[key].get("name"), bool(source[key].get("optional"))
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in value_from:
                    yield kind, value_from[key].get("name"), bool(value_from[key].get("optional"))
    for volume in pod.get("volumes") or []:
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"].get("name"), bool(volume["configMap"].get("optional"))
        if "secret" in volume:
            yield "Secret", volume["secret"].get("secretName"), bool(volume["secret"].get("optional"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield "ConfigMap", source["configMap"].get("name"), bool(source["configMap"].get("optional"))
            if "secret" in source:
                yield "Secret", source["secret"].get("name"), bool(source["secret"].get("optional"))


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels/matchExpressions (or a plain Service selector map) against pod labels."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if any(labels.get(k) != v for k, v in (match_labels or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def cross_object_violations(objects: list[dict], external_secrets: set[str]) -> list[Violation]:
    out = []

    def ns(obj: dict) -> str:
        return (obj.get("metadata") or {}).get("namespace") or "default"

    present = {(o.get("kind"), ns(o), (o.get("metadata") or {}).get("name")) for o in objects}
    workloads = [o for o in objects if pod_spec_of(o) is not None]

    for obj in workloads:
        for kind, name, optional in pod_references(pod_spec_of(obj)):
            if optional or (kind, ns(obj), name) in present:
                continue
            if kind == "Secret" and name in external_secrets:
                continue
            hint = " (declare it with --external-secret if it is created out of band)" if kind == "Secret" else ""
            out.append(Violation("references", name_of(obj), f"uses {kind} {name!r}, which is not rendered{hint}"))

    for obj in objects:
        kind = obj.get("kind")
        spec = obj.get("spec") or {}
        if kind == "Service" and spec.get("selector") and spec.get("type") != "ExternalName":
            if not any(ns(w) == ns(obj) and selects(spec["selector"], pod_labels_of(w)) for w in workloads):
                out.append(Violation("references", name_of(obj), f"selector {spec['selector']} matches no pod template"))
        if kind == "PodDisruptionBudget":
            if not any(ns(w) == ns(obj) and selects(spec.get("selector") or {}, pod_labels_of(w)) for w in workloads):
                out.append(Violation("references", name_of(obj), "selector matches no pod template"))
        if kind == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef") or {}
            target = next((w for w in workloads if w.get("kind") == ref.get("kind") and ns(w) == ns(obj)
                           and (w.get("metadata") or {}).get("name") == ref.get("name")), None)
            if target is None:
                out.append(Violation("references", name_of(obj), f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not rendered"))
            elif "replicas" in (target.get("spec") or {}):
                out.append(Violation("hpa-replicas", name_of(target),
                                     f"sets spec.replicas but {name_of(obj)} scales it; drop replicas"))
    return out


GATEWAY_CONTAINER = "gateway"
AUTH_MODES = ("trusted", "jwt")


def container_env(container: dict, namespace: str, config_maps: dict) -> dict[str, str | None]:
    """The variables a container is given, as far as the render shows them: literal values,
    values from rendered ConfigMaps; None for a value that exists but is not visible here (a
    Secret, a field reference). Later sources win, as in the kubelet (env over envFrom)."""
    out: dict[str, str | None] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            data = config_maps.get((namespace, ref.get("name"))) or {}
            prefix = source.get("prefix") or ""
            out.update({prefix + k: str(v) for k, v in data.items()})
    for env in container.get("env") or []:
        name = env.get("name")
        if "value" in env:
            out[name] = str(env["value"])
            continue
        value_from = env.get("valueFrom") or {}
        ref = value_from.get("configMapKeyRef")
        if ref:
            data = config_maps.get((namespace, ref.get("name"))) or {}
            if ref.get("key") in data:
                out[name] = str(data[ref["key"]])
            continue
        out[name] = None
    return out


def gateway_auth_violations(objects: list[dict], required_mode: str | None) -> list[Violation]:
    def ns(obj: dict) -> str:
        return (obj.get("metadata") or {}).get("namespace") or "default"

    config_maps = {(ns(o), (o.get("metadata") or {}).get("name")): o.get("data") or {}
                   for o in objects if o.get("kind") == "ConfigMap"}
    out = []
    for obj in objects:
        pod = pod_spec_of(obj)
        if pod is None:
            continue
        for container in pod.get("containers") or []:
            if container.get("name") != GATEWAY_CONTAINER:
                continue
            where = f"{name_of(obj)} container {GATEWAY_CONTAINER}"
            env = container_env(container, ns(obj), config_maps)

            def fail(message: str) -> None:
                out.append(Violation("gateway-auth", where, message))

            def given(name: str) -> bool:
                # A Secret's value counts as given; an empty literal does not.
                return name in env and env[name] != ""

            mode = env.get("GATEWAY_AUTH")
            if "GATEWAY_AUTH" not in env:
                fail("GATEWAY_AUTH is not set (the gateway refuses to start without it)")
                continue
            if mode is None:
                if required_mode:
                    fail(f"GATEWAY_AUTH is not visible in the render (a Secret or field reference); "
                         f"it must be a literal {required_mode!r} here")
                continue
            if mode not in AUTH_MODES:
                fail(f"GATEWAY_AUTH={mode!r}: must be one of {', '.join(AUTH_MODES)}")
                continue
            if required_mode and mode != required_mode:
                fail(f"GATEWAY_AUTH={mode!r}, but this render must run {required_mode!r}"
                     + (" (userIds in requests would be believed)" if mode == "trusted" else ""))
            if mode == "jwt":
                for name in ("GATEWAY_JWT_ISSUER", "GATEWAY_JWT_AUDIENCE"):
                    if not given(name):
                        fail(f"GATEWAY_AUTH=jwt without {name}")
                sources = [n for n in ("GATEWAY_JWT_JWKS_URL", "GATEWAY_JWT_JWKS_FILE") if given(n)]
                if not sources:
                    fail("GATEWAY_AUTH=jwt without a JWKS source (GATEWAY_JWT_JWKS_URL or GATEWAY_JWT_JWKS_FILE)")
                elif len(sources) > 1:
                    fail("both GATEWAY_JWT_JWKS_URL and GATEWAY_JWT_JWKS_FILE are set: give one")
                url = env.get("GATEWAY_JWT_JWKS_URL")
                if url and not url.startswith("https://"):
                    fail(f"GATEWAY_JWT_JWKS_URL {url!r} is not https: keys fetched in the clear can be swapped")
    return out


# dns:///host:port (gRPC's name syntax, no authority) or http(s)://host:port, as kit::grpc::Target
DNS_TARGET = re.compile(r"dns:(?:///)?([A-Za-z0-9.-]+):(\d+)")
URL_TARGET = re.compile(r"https?://([A-Za-z0-9.-]+):(\d+)/?")


def grpc_discovery_violations(objects: list[dict]) -> list[Violation]:
    def ns(obj: dict) -> str:
        return (obj.get("metadata") or {}).get("namespace") or "default"

    services = {(ns(o), (o.get("metadata") or {}).get("name")): o
                for o in objects if o.get("kind") == "Service"}
    out = []
    for obj in objects:
        if obj.get("kind") != "ConfigMap":
            continue
        for key, value in (obj.get("data") or {}).items():
            if not key.endswith("_URL"):
                continue
            for target in str(value).split(","):
                target = target.strip()
                dns = DNS_TARGET.fullmatch(target)
                match = dns or URL_TARGET.fullmatch(target)
                if not match:
                    continue
                host, port = match.group(1), int(match.group(2))
                # `name`, `name.namespace`, `name.namespace.svc.cluster.local`
                labels = host.split(".")
                service = services.get((labels[1] if len(labels) > 1 else ns(obj), labels[0]))
                if service is None:
                    continue
                spec = service.get("spec") or {}
                grpc = any(p.get("port") == port and p.get("appProtocol") == "grpc"
                           for p in spec.get("ports") or [])
                if not grpc:
                    continue
                where = f"{name_of(obj)} {key}"
                if not dns:
                    out.append(Violation("grpc-discovery", where,
                                         f"{target} connects to one pod of Service {labels[0]}: use "
                                         f"dns:///{labels[0]}:{port} so calls are balanced over its pods"))
                elif spec.get("clusterIP") != "None":
                    out.append(Violation("grpc-discovery", where,
                                         f"{target} resolves {name_of(service)}, which is not headless: its "
                                         f"one virtual IP balances connections, not calls (set clusterIP: None)"))
    return out


def check(objects: list[tuple[Path, dict]], versions: list[str], external_secrets: set[str],
          required_gateway_auth: str | None = None) -> list[Violation]:
    out = schema_violations(objects, versions) if versions else []
    for path, obj in objects:
        out += [Violation(v.rule, f"{path.name} {v.where}", v.message) for v in workload_violations(obj)]
    out += cross_object_violations([obj for _, obj in objects], external_secrets)
    out += gateway_auth_violations([obj for _, obj in objects], required_gateway_auth)
    out += grpc_discovery_violations([obj for _, obj in objects])
    return out


# ---- entry points ---------------------------------------------------------------------------------

def selftest(directory: Path, versions: list[str]) -> int:
    fixtures = sorted(directory.glob("*.yaml"))
    if not fixtures:
        print(f"selftest: no fixtures in {directory}", file=sys.stderr)
        return 1
    failures = 0
    for fixture in fixtures:
        first = fixture.read_text().splitlines()[0]
        m = re.match(r"#\s*expect:\s*([\w-]+)", first)
        if not m:
            print(f"selftest: {fixture.name}: first line must be `# expect: <rule>` or `# expect: ok`")
            failures += 1
            continue
        expected = m.group(1)
        try:
            violations = check(load([fixture]), versions, set())
        except LoadError as e:
            violations = [Violation("load", fixture.name, str(e))]
        rules = sorted({v.rule for v in violations})
        # Each fixture breaks exactly one rule (or none): anything else is a wrong judgment.
        good = rules == ([] if expected == "ok" else [expected])
        verdict = "ok  " if good else "FAIL"
        got = ", ".join(rules) if rules else "no violations"
        print(f"  {verdict} {fixture.name}: expected {expected}, got {got}")
        if not good:
            failures += 1
            for v in violations:
                print(f"       {v}")
    print(f"selftest: {len(fixtures) - failures} of {len(fixtures)} fixtures judged as expected")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--k8s-version", action="append", dest="versions",
                        help=f"Kubernetes version(s) whose schemas to validate against (default {DEFAULT_VERSIONS})")
    parser.add_argument("--no-schema", action="store_true", help="rules only")
    parser.add_argument("--external-secret", action="append", default=[],
                        help="a Secret created out of band (not in the render)")
    parser.add_argument("--gateway-auth", choices=AUTH_MODES,
                        help="the gateway must run this identity mode (validate: jwt for prod)")
    parser.add_argument("--selftest", type=Path, metavar="DIR")
    args = parser.parse_args()
    versions = [] if args.no_schema else (args.versions or DEFAULT_VERSIONS)

    if args.selftest:
        return selftest(args.selftest, versions)
    if not args.files:
        parser.error("no files")
    try:
        objects = load(args.files)
    except LoadError as e:
        print(f"FAIL [load] {e}")
        return 1
    violations = check(objects, versions, set(args.external_secret), args.gateway_auth)
    for v in violations:
        print(v)
    names = ", ".join(str(p) for p in args.files)
    if violations:
        print(f"{names}: {len(violations)} violation(s) in {len(objects)} objects")
        return 1
    schema = f"schema-valid for Kubernetes {', '.join(versions)}; " if versions else ""
    print(f"{names}: {len(objects)} objects, {schema}every rule holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
