"""The Redis client: redis://, unix:// and rediss:// (TLS), including a PaaS add-on's self-signed certificate."""

import ipaddress
import logging
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis

from bridge import create_app
from bridge.redis_client import client_options, connect
from bridge.settings import Settings
from tests.conftest import free_port
from tests.processes import wait_for
from tests.signing import woo_post
from tests.test_pipeline import ORDER

PLAIN = {"socket_connect_timeout": 2, "socket_timeout": 10, "health_check_interval": 30}


# --- the options built for each kind of URL -------------------------------------------------------------------

@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:pw@example.com:6380/2", "unix:///tmp/redis.sock?db=3"])
def test_plain_urls_get_no_tls_options_whatever_the_tls_settings(url):
    for settings in (Settings(), Settings(redis_tls_verify="none"), Settings(redis_tls_ca_file="/etc/ca.pem")):
        assert client_options(url, settings) == PLAIN


def test_rediss_verifies_the_certificate_by_default():
    assert client_options("rediss://:pw@example.com:6380", Settings()) == {**PLAIN, "ssl_cert_reqs": "required"}


def test_rediss_with_a_ca_file_verifies_against_it():
    options = client_options("rediss://example.com", Settings(redis_tls_ca_file="/etc/addon-ca.pem"))
    assert options == {**PLAIN, "ssl_cert_reqs": "required", "ssl_ca_certs": "/etc/addon-ca.pem"}


def test_rediss_without_verification_for_self_signed_add_ons():
    options = client_options("rediss://example.com", Settings(redis_tls_verify="none"))
    assert options == {**PLAIN, "ssl_cert_reqs": "none", "ssl_check_hostname": False}


def test_the_clients_built_use_the_right_connection_class(tmp_path):
    tls = connect("rediss://:pw@example.com:6380/1", Settings(redis_tls_verify="none"))
    assert tls.connection_pool.connection_class is redis.SSLConnection
    assert tls.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert connect("redis://example.com/1", Settings()).connection_pool.connection_class is redis.Connection
    assert connect(f"unix://{tmp_path}/r.sock", Settings()).connection_pool.connection_class is redis.UnixDomainSocketConnection


def test_without_settings_the_tls_options_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BRIDGE_REDIS_TLS_VERIFY", "none")
    assert connect("rediss://example.com").connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"


@pytest.mark.parametrize("raw, expected", [(None, "required"), ("", "required"), ("none", "none"), ("NONE", "none"), ("required", "required")])
def test_tls_verify_setting(raw, expected):
    assert Settings.from_env({} if raw is None else {"BRIDGE_REDIS_TLS_VERIFY": raw}).redis_tls_verify == expected


@pytest.mark.parametrize("raw", ["off", "optional", "false", "0"])
def test_tls_verify_setting_refuses_other_values(raw):
    with pytest.raises(ValueError, match="BRIDGE_REDIS_TLS_VERIFY must be one of required, none"):
        Settings.from_env({"BRIDGE_REDIS_TLS_VERIFY": raw})


def test_tls_ca_file_setting():
    assert Settings.from_env({}).redis_tls_ca_file is None
    assert str(Settings.from_env({"BRIDGE_REDIS_TLS_CA_FILE": "/etc/ca.pem"}).redis_tls_ca_file) == "/etc/ca.pem"


# --- real servers ---------------------------------------------------------------------------------------------

def test_redis_url_still_works(redis_url, redis_conn):
    assert connect(redis_url, Settings()).ping()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs a redis-server binary")
def test_unix_socket_url_still_works(tmp_path):
    socket = tmp_path / "redis.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        client = connect(f"unix://{socket}?db=2", Settings())
        assert wait_for(client.ping, timeout=20, what="redis-server on a unix socket")
        client.close()
    finally:
        server.terminate()
        server.wait()


def _self_signed(directory) -> tuple[str, str]:
    """Write a self-signed certificate for localhost and 127.0.0.1, like a PaaS add-on's; return (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_redis(tmp_path):
    """Start a redis-server that speaks only TLS, with a self-signed certificate; return (rediss URL, cert path)."""
    if not shutil.which("redis-server"):
        pytest.skip("needs a redis-server binary")
    cert, key = _self_signed(tmp_path)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"rediss://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, ssl_cert_reqs="none", socket_connect_timeout=1)
    try:
        for _ in range(200):
            if server.poll() is not None:
                pytest.skip(f"this redis-server cannot serve TLS: {server.stdout.read()[-300:]}")
            try:
                if probe.ping():
                    break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server with TLS did not answer")
        yield url, cert
    finally:
        probe.close()
        server.terminate()
        server.communicate(timeout=30)


def test_a_self_signed_add_on_is_refused_by_default(tls_redis):
    url, _ = tls_redis
    client = connect(url, Settings())
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.ping()
    client.close()


def test_a_self_signed_add_on_works_with_verification_off_and_says_so(tls_redis, caplog):
    url, _ = tls_redis
    with caplog.at_level(logging.WARNING, logger="bridge.redis"):
        client = connect(url, Settings(redis_tls_verify="none"))
    assert client.ping() and client.set("bridge:test:tls", "1") and client.get("bridge:test:tls") == b"1"
    assert "BRIDGE_REDIS_TLS_VERIFY=none" in caplog.text
    client.close()


def test_a_self_signed_add_on_is_verified_against_its_certificate(tls_redis):
    url, cert = tls_redis
    client = connect(url, Settings(redis_tls_ca_file=cert))
    assert client.ping()
    client.close()


def test_the_receiver_queues_over_tls(tls_redis, settings_overrides, lms_env, monkeypatch):
    url, _ = tls_redis
    client = create_app({**settings_overrides, "redis_url": url}, env={**lms_env, "BRIDGE_REDIS_TLS_VERIFY": "none"}).test_client()
    response = client.post("/hooks/shop", **woo_post(ORDER))
    assert response.status_code == 202, response.get_json()
    assert client.get("/readyz").get_json()["checks"]["redis"] == {"ok": True}
