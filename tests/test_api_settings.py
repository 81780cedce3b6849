"""ApiSettings from the environment and from the service's Settings; secrets stay out of reprs."""

from __future__ import annotations

import pytest

from ari_amd.api.settings import ApiSettings, SettingsError
from ari_amd.calls.config import Settings
from ari_amd.calls.model import DialplanTarget


def test_from_env_reads_accounts_and_the_endpoint_rules() -> None:
    s = ApiSettings.from_env(
        {
            "ARI_AMD_ACCOUNTS": "AC1:tok1, AC2:tok2",
            "ARI_AMD_ENDPOINTS_TEMPLATE": "PJSIP/{number}@carrier",
            "ARI_AMD_HTTP_PORT": "9090",
            "ARI_AMD_DIALPLAN_CONTEXT": "after-amd",
        }
    )
    assert s.accounts == {"AC1": "tok1", "AC2": "tok2"}
    assert s.endpoint_template == "PJSIP/{number}@carrier" and s.sip_endpoint == "carrier" and s.port == 9090
    assert s.dialplan == DialplanTarget("after-amd", "s", 1)
    assert "tok1" not in repr(s)


@pytest.mark.parametrize(
    ("env", "named"),
    [({"ARI_AMD_ENDPOINTS_TEMPLATE": "PJSIP/x"}, "template"), ({"ARI_AMD_HTTP_PORT": "eighty"}, "ARI_AMD_HTTP_PORT")],
)
def test_bad_environment_is_a_settings_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as e:
        ApiSettings.from_env(env)
    assert named in str(e.value)


def test_coerce_takes_the_services_settings() -> None:
    s = ApiSettings.coerce(
        Settings(
            accounts={"AC1": "t"},
            endpoints_template="PJSIP/{number}@trunk7",
            dialplan_context="out",
            dialplan_extension="amd",
            callbacks_outbox="/tmp/x.db",
            callbacks_horizon_s=60.0,
            http_port=8181,
        )
    )
    assert s.accounts == {"AC1": "t"} and s.sip_endpoint == "trunk7" and s.port == 8181
    assert s.dialplan == DialplanTarget("out", "amd", 1)
    assert s.outbox_path == "/tmp/x.db" and s.retry_horizon_s == 60.0
    assert ApiSettings.coerce(s) is s
