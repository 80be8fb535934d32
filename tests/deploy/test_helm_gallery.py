"""The chart's gallery block: the URL from a Secret, the optional bundled PostgreSQL."""

from __future__ import annotations

import base64

import pytest
from test_helm_chart import KUBE_VERSION, gateway_env, maybe, one, render

helm = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

BUNDLED = {"gallery": {"enabled": True, "postgres": {"enabled": True}}}


def test_gallery_is_off_by_default() -> None:
    objects = render()
    assert "FACEGATE_GALLERY_URL" not in gateway_env(objects)
    assert maybe(objects, "StatefulSet", "gallery-postgres") is None
    assert maybe(objects, "Secret", "gallery") is None


def test_bundled_postgres_and_generated_url() -> None:
    objects = render(BUNDLED)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    secret = one(objects, "Secret", "gallery")
    url = base64.b64decode(secret["data"]["url"]).decode()
    password = base64.b64decode(secret["data"]["password"]).decode()
    service = one(objects, "Service", "gallery-postgres")
    assert url == f"postgresql://facegate:{password}@{service['metadata']['name']}:5432/facegate"
    env = gateway_env(objects)
    assert env["FACEGATE_GALLERY_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "url",
    }
    pod = one(objects, "StatefulSet", "gallery-postgres")["spec"]["template"]["spec"]
    (postgres,) = pod["containers"]
    assert postgres["env"][2]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert postgres["securityContext"]["readOnlyRootFilesystem"] is True
    # Sized for the HNSW indexes, and reloaded after a restart (values: gallery.postgres).
    assert "shared_buffers=1GB" in postgres["args"]
    assert "shared_preload_libraries=pg_prewarm" in postgres["args"]
    # Only the gateway may reach the database (it holds biometric templates).
    policy = one(objects, "NetworkPolicy", "gallery-postgres")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_existing_secret_for_a_cluster_database() -> None:
    objects = render({"gallery": {"enabled": True, "existingSecret": "db-url", "secretKey": "dsn"}})
    assert gateway_env(objects)["FACEGATE_GALLERY_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "db-url",
        "key": "dsn",
    }
    assert maybe(objects, "StatefulSet", "gallery-postgres") is None
    assert maybe(objects, "Secret", "gallery") is None


def test_gallery_without_a_database_is_refused() -> None:
    with pytest.raises(helm.HelmError, match=r"gallery\.existingSecret"):
        render({"gallery": {"enabled": True}})
