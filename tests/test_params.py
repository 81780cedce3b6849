import pytest

from ari_amd.detect import AmdParams, Mode, ParameterError


def test_defaults_are_twilios() -> None:
    p = AmdParams()
    assert (p.mode, p.timeout_ms, p.speech_threshold_ms, p.speech_end_threshold_ms, p.silence_timeout_ms) == (
        Mode.ENABLE, 30_000, 2_400, 1_200, 5_000)


@pytest.mark.parametrize(
    ("field", "value", "name", "allowed"),
    [
        ("timeout_ms", 2_000, "MachineDetectionTimeout", "3-59 s"),
        ("timeout_ms", 60_000, "MachineDetectionTimeout", "3-59 s"),
        ("speech_threshold_ms", 999, "MachineDetectionSpeechThreshold", "1000-6000 ms"),
        ("speech_threshold_ms", 6_001, "MachineDetectionSpeechThreshold", "1000-6000 ms"),
        ("speech_end_threshold_ms", 499, "MachineDetectionSpeechEndThreshold", "500-5000 ms"),
        ("speech_end_threshold_ms", 5_001, "MachineDetectionSpeechEndThreshold", "500-5000 ms"),
        ("silence_timeout_ms", 1_999, "MachineDetectionSilenceTimeout", "2000-10000 ms"),
        ("silence_timeout_ms", 10_001, "MachineDetectionSilenceTimeout", "2000-10000 ms"),
        ("beep_timeout_ms", 999, "MachineDetectionBeepTimeout", "1000-59000 ms"),
        ("beep_timeout_ms", 59_001, "MachineDetectionBeepTimeout", "1000-59000 ms"),
    ],
)
def test_out_of_range_names_the_parameter_and_range(field: str, value: int, name: str, allowed: str) -> None:
    with pytest.raises(ParameterError) as err:
        AmdParams(**{field: value})
    assert err.value.name == name
    assert name in str(err.value) and allowed in str(err.value)


def test_edges_are_accepted() -> None:
    AmdParams(timeout_ms=3_000, speech_threshold_ms=1_000, speech_end_threshold_ms=500, silence_timeout_ms=2_000)
    AmdParams(timeout_ms=59_000, speech_threshold_ms=6_000, speech_end_threshold_ms=5_000, silence_timeout_ms=10_000)


def test_non_integers_are_refused() -> None:
    with pytest.raises(ParameterError, match="MachineDetectionSpeechThreshold"):
        AmdParams(speech_threshold_ms=2400.5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="MachineDetectionSpeechThreshold"):
        AmdParams(speech_threshold_ms=True)  # type: ignore[arg-type]


def test_mode_parses_case_insensitively_and_names_bad_values() -> None:
    assert Mode.parse("detectmessageend") is Mode.DETECT_MESSAGE_END
    with pytest.raises(ParameterError, match="MachineDetection must be Enable or DetectMessageEnd"):
        Mode.parse("Sometimes")
