"""The channel variables a dialplan sees after ari-amd, in app_amd's vocabulary plus Twilio's.

app_amd sets AMDSTATUS to MACHINE, HUMAN, NOTSURE or HANGUP and AMDCAUSE to a word and the
figures that tripped it (HUMAN-<silence>-<afterGreetingSilence>, LONGGREETING-<voice>-<greeting>,
INITIALSILENCE-<silence>-<initialSilence>, TOOLONG-<total>). Dialplans test those, so we set
them the same way; causes app_amd has no word for (a beep, a fax) follow the same pattern.
ANSWEREDBY carries Twilio's verdict and AMDDURATION the ms from answer to it.
"""

from __future__ import annotations

from ari_amd.detect import AnsweredBy, Rule, Verdict

STATUS = {
    AnsweredBy.HUMAN: "HUMAN",
    AnsweredBy.MACHINE_START: "MACHINE",
    AnsweredBy.MACHINE_END_BEEP: "MACHINE",
    AnsweredBy.MACHINE_END_SILENCE: "MACHINE",
    AnsweredBy.MACHINE_END_OTHER: "MACHINE",
    AnsweredBy.FAX: "MACHINE",  # what AMD() says of a fax; ANSWEREDBY tells them apart
    AnsweredBy.UNKNOWN: "NOTSURE",
}

CAUSE_WORD = {
    Rule.SPEECH_END: "HUMAN",
    Rule.SPEECH_THRESHOLD: "LONGGREETING",
    Rule.SILENCE_TIMEOUT: "INITIALSILENCE",
    Rule.TIMEOUT: "TOOLONG",
    Rule.BEEP: "BEEP",
    Rule.FAX: "FAX",
    Rule.SIT: "SIT",
    Rule.MUSIC: "MUSIC",
    Rule.END_SILENCE: "ENDSILENCE",
    Rule.AUDIO_END: "ENDOFAUDIO",
}


def amd_cause(v: Verdict) -> str:
    word = CAUSE_WORD[v.rule]
    if v.rule is Rule.TIMEOUT:
        return f"{word}-{v.measure_ms}"
    if v.limit_ms:
        return f"{word}-{v.measure_ms}-{v.limit_ms}"
    return f"{word}-{v.measure_ms or v.duration_ms}"


def channel_variables(v: Verdict, hangup: bool = False) -> dict[str, str]:
    """hangup: the callee hung up before a verdict (app_amd's HANGUP, with an empty cause)."""
    if hangup and v.answered_by is AnsweredBy.UNKNOWN:
        status, cause = "HANGUP", ""
    else:
        status, cause = STATUS[v.answered_by], amd_cause(v)
    return {
        "AMDSTATUS": status,
        "AMDCAUSE": cause,
        "ANSWEREDBY": v.answered_by.value,
        "AMDDURATION": str(v.duration_ms),
    }
