import pytest

from ari_amd.calls.variables import channel_variables
from ari_amd.detect import AnsweredBy, Rule, Verdict


@pytest.mark.parametrize(
    ("verdict", "status", "cause"),
    [
        (Verdict(AnsweredBy.HUMAN, 2450, "", Rule.SPEECH_END, 1200, 1200), "HUMAN", "HUMAN-1200-1200"),
        (Verdict(AnsweredBy.MACHINE_START, 3100, "", Rule.SPEECH_THRESHOLD, 2400, 2400), "MACHINE", "LONGGREETING-2400-2400"),
        (Verdict(AnsweredBy.UNKNOWN, 5000, "", Rule.SILENCE_TIMEOUT, 5000, 5000), "NOTSURE", "INITIALSILENCE-5000-5000"),
        (Verdict(AnsweredBy.UNKNOWN, 30000, "", Rule.TIMEOUT, 30000, 30000), "NOTSURE", "TOOLONG-30000"),
        (Verdict(AnsweredBy.MACHINE_END_BEEP, 7300, "", Rule.BEEP, 420), "MACHINE", "BEEP-420"),
        (Verdict(AnsweredBy.FAX, 1100, "", Rule.FAX), "MACHINE", "FAX-1100"),
    ],
)
def test_app_amd_vocabulary(verdict: Verdict, status: str, cause: str) -> None:
    v = channel_variables(verdict)
    assert v["AMDSTATUS"] == status
    assert v["AMDCAUSE"] == cause
    assert v["ANSWEREDBY"] == verdict.answered_by.value
    assert v["AMDDURATION"] == str(verdict.duration_ms)


def test_hangup_before_a_verdict_is_app_amds_hangup() -> None:
    v = channel_variables(Verdict(AnsweredBy.UNKNOWN, 900, "hangup", Rule.AUDIO_END, 900), hangup=True)
    assert (v["AMDSTATUS"], v["AMDCAUSE"], v["ANSWEREDBY"]) == ("HANGUP", "", "unknown")
