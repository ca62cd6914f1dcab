"""The catalog's listening socket."""

from __future__ import annotations

import socket

import pytest

from chatlake.catalog.server import bind, check_bind
from chatlake.errors import ConfigError


def test_listening_socket_disables_nagle_for_every_connection():
    # Without TCP_NODELAY each response waited ~40 ms for a delayed ACK.
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_a_taken_port_is_one_clear_error():
    first = bind("127.0.0.1", 0)
    first.listen()
    port = first.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        first.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_binds_beyond_loopback_need_tls(host):
    with pytest.raises(ConfigError, match=f"refusing to listen on {host} without TLS"):
        check_bind(host, tls=False)
    check_bind(host, tls=True)
    check_bind("127.0.0.1", tls=False)
    check_bind("::1", tls=False)


def test_a_data_dir_that_is_not_a_catalog_is_one_clear_error(tmp_path):
    from chatlake.catalog.config import CatalogSettings
    from chatlake.catalog.server import open_service

    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.sqlite").write_bytes(b"not a database " * 100)

    with pytest.raises(ConfigError) as caught:
        open_service(CatalogSettings(data_dir=tmp_path))
    assert str(caught.value) == (
        f"cannot open the catalog in {tmp_path}: file is not a database"
    )
