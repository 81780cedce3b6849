"""Suite-wide settings."""

from hypothesis import HealthCheck, settings

# The suite shares a 2-core machine with a live Asterisk and SIPp: data generation can be slow
# for reasons that have nothing to do with the code under test. Properties still run in full.
settings.register_profile("ari-amd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ari-amd")
