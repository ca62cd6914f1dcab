"""--tls: a CA and server certificate in the data dir, trusted via SSL_CERT_FILE."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from zerobus import StreamConfigurationOptions, TableProperties, ZerobusException

from tests.integration.ingest_support import (
    create_table,
    ingest_server,
    read_rows,
    sdk,
    settle,
    writer,
)

TABLE = "main.chatbot.secure"


def test_tls_stream_with_the_generated_ca(catalog_server, monkeypatch):
    create_table(catalog_server, TABLE, "id STRING NOT NULL")
    client_id, secret = writer(catalog_server, "tls", TABLE)
    with ingest_server(catalog_server, tls=True) as running:
        ca_file = catalog_server.data_dir / "tls" / "ca.pem"
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        assert running.endpoint.startswith("https://localhost:")
        stream = sdk(running, catalog_server).create_stream(
            client_id, secret, TableProperties(TABLE)
        )
        stream.ingest_record_offset(json.dumps({"id": "over-tls"}))
        stream.flush()
        stream.close()
        settle(running)

    assert [r["id"] for r in read_rows(catalog_server, TABLE, "id")] == ["over-tls"]
    cert = x509.load_pem_x509_certificate(
        (catalog_server.data_dir / "tls" / "server.pem").read_bytes()
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "::1",
    ]
    key_mode = (catalog_server.data_dir / "tls" / "server-key.pem").stat().st_mode
    assert key_mode & 0o777 == 0o600


def test_tls_with_another_ca_is_refused_by_the_client(
    catalog_server, monkeypatch, tmp_path
):
    create_table(catalog_server, TABLE, "id STRING NOT NULL")
    client_id, secret = writer(catalog_server, "tls", TABLE)
    other_ca = tmp_path / "other"
    from chatlake.ingest.tls import ensure_certificates

    monkeypatch.setenv("SSL_CERT_FILE", str(ensure_certificates(other_ca).ca_cert))
    options = StreamConfigurationOptions(recovery=False, recovery_timeout_ms=3000)
    with ingest_server(catalog_server, tls=True) as running:
        with pytest.raises(ZerobusException) as caught:
            sdk(running, catalog_server).create_stream(
                client_id, secret, TableProperties(TABLE), options
            )

    # Another chatlake CA has the same name, so the client reports a bad signature.
    assert "invalid peer certificate" in str(caught.value)
