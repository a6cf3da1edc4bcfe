"""deploy/kubernetes, validated offline against the Kubernetes OpenAPI schemas.

The schemas come with the PyPI package kubernetes-validate (its "strict" variants refuse
unknown fields, so a misspelt key fails); nothing is fetched at test time.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate  # the test extra installs it
import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
#: The oldest Kubernetes still commonly run; the manifests use nothing newer.
VERSION = "1.30"


def documents() -> list[tuple[str, dict]]:
    found = [(path.name, doc) for path in sorted(MANIFESTS.glob("*.yaml"))
             for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert found, "no manifests"
    return found


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def test_every_manifest_is_valid_for_kubernetes_strictly():
    for name, doc in documents():
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {error.message}")


def test_a_misspelt_field_is_refused_so_the_validation_is_real():
    deployment = next(iter(by_kind("Deployment").values()))
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriod"):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_batch_servers_are_named_by_their_pod_stop_warm_and_are_probed_on_healthz():
    settings = by_kind("ConfigMap")["batchjobs-settings"]["data"]
    secret = by_kind("Secret")["batchjobs-urls"]
    servers = {n: d for n, d in by_kind("Deployment").items() if "--groups" in
               d["spec"]["template"]["spec"]["containers"][0]["args"]}
    groups = {d["spec"]["template"]["spec"]["containers"][0]["args"][2] for d in servers.values()}
    assert groups == {"default", "BG1"}                 # a Deployment per batch group
    port = int(settings["BATCHJOBS_METRICS_PORT"])
    assert settings["BATCHJOBS_METRICS_ADDRESS"] == "0.0.0.0"   # the kubelet probes from outside
    for name, deployment in servers.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 600, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["BATCHJOBS_SERVER"]["valueFrom"] == {"fieldRef": {"fieldPath":
                                                                     "metadata.name"}}
        assert "BATCHJOBS_DATABASE_URL" not in env and "BATCHJOBS_BROKER_URL" not in env
        assert container["envFrom"] == [{"configMapRef": {"name": "batchjobs-settings"}}]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": port}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        secret_dir = settings["BATCHJOBS_DATABASE_URL_FILE"].rsplit("/", 1)[0]
        assert settings["BATCHJOBS_BROKER_URL_FILE"].rsplit("/", 1)[0] == secret_dir
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts[secret_dir]]["secret"]["secretName"] == secret["metadata"]["name"]
    assert set(secret["stringData"]) == {"database_url", "broker_url"}
