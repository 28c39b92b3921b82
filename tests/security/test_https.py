"""HTTPS for ingress and the console (HERALD_TLS_CERT / HERALD_TLS_KEY, one place:
services/core/webservice.serve): with a certificate this test's CA signed, a client that trusts
the CA is served; one that does not, and plain HTTP to the same port, are not. The console's
cookies are Secure as soon as it serves HTTPS."""

from __future__ import annotations

import ssl

import httpx
import pytest
from pydantic import ValidationError

from services.core.settings import Settings
from tests.support.infra import wait_until
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("https-pki"))


def trusting(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def start_https(stack, module: str, pki):
    proc = stack.start(module, health=False, HERALD_TLS_CERT=str(pki.cert), HERALD_TLS_KEY=str(pki.key))
    url = f"https://127.0.0.1:{proc.port}"

    def healthy() -> bool:
        assert proc.alive(), proc.log_path.read_text()[-2000:]
        r = httpx.get(f"{url}/health", verify=trusting(pki), timeout=3)
        return r.status_code == 200 and r.json()["status"] == "ok"

    wait_until(healthy, 60, 0.2, f"{module} healthy over HTTPS")
    return proc, url


def test_ingress_serves_https_to_clients_that_trust_its_ca_and_nothing_else(stack, pki, tmp_path):
    proc, url = start_https(stack, "services.ingress", pki)
    r = httpx.post(f"{url}/v1/messages", json={}, verify=trusting(pki), timeout=5)
    assert r.status_code == 401  # served (and refused for want of a key), over TLS
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/health", timeout=5)  # the system's CAs do not know the test CA
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{proc.port}/health", timeout=5)  # plain HTTP to the TLS port
    assert proc.alive()
    assert "listening on https://" in proc.log_path.read_text()


def test_the_console_over_https_sets_only_secure_cookies(stack, pki):
    proc, url = start_https(stack, "services.console", pki)
    r = httpx.get(f"{url}/login", verify=trusting(pki), timeout=5)
    assert r.status_code == 200
    cookies = r.headers.get_list("set-cookie")
    assert cookies and all("Secure" in c for c in cookies), cookies
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{proc.port}/login", timeout=5)


def test_a_certificate_without_its_key_is_refused_at_start(pki):
    with pytest.raises(ValidationError, match="set both or neither"):
        Settings(tls_cert=str(pki.cert))
    assert Settings(tls_cert=str(pki.cert), tls_key=str(pki.key)).console_secure_cookies is True
