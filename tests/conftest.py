"""Suite-wide settings."""

from hypothesis import HealthCheck, settings

# The suite shares a 2-core machine with a live Asterisk and SIPp: data generation can be slow
# for reasons that have nothing to do with the code under test. Properties still run in full.
settings.register_profile("ari-amd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ari-amd")

from ari_amd.logs import configure_logging  # noqa: E402

# Readable logs in failure reports; debug only when asked (ARI_AMD_TEST_LOG=debug).
configure_logging(__import__("os").environ.get("ARI_AMD_TEST_LOG", "info"), json=False)
