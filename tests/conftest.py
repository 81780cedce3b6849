"""Suite-wide settings, and fixtures more than one module uses."""

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# The suite shares a 2-core machine with a live Asterisk and SIPp: data generation can be slow
# for reasons that have nothing to do with the code under test. Properties still run in full.
settings.register_profile("ari-amd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ari-amd")

from ari_amd.logs import configure_logging  # noqa: E402

# Readable logs in failure reports; debug only when asked (ARI_AMD_TEST_LOG=debug).
configure_logging(__import__("os").environ.get("ARI_AMD_TEST_LOG", "info"), json=False)


def _loopback_udp() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    """A UDP socket on loopback to send RTP from (its address is the call's source)."""
    yield from _loopback_udp()


@pytest.fixture
def spoofer() -> Iterator[socket.socket]:
    """Another one, for packets from a stranger."""
    yield from _loopback_udp()
