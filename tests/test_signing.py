from multidict import MultiDict
from twilio.request_validator import RequestValidator

from ari_amd.calls.signing import twilio_signature

TOKEN = "12345678901234567890123456789012"


def test_twilios_validator_accepts_our_signature() -> None:
    url = "https://dialer.example.test/amd/callback?tenant=7"
    params = {
        "CallSid": "CA" + "0" * 32,
        "AccountSid": "AC" + "1" * 32,
        "AnsweredBy": "machine_end_beep",
        "MachineDetectionDuration": "5400",
        "Note": "ünïcode & spaces",
    }
    sig = twilio_signature(TOKEN, url, params)
    assert RequestValidator(TOKEN).validate(url, params, sig)


def test_repeated_names_are_signed_sorted() -> None:
    url = "http://127.0.0.1:9000/status"
    events = ["ringing", "answered", "initiated"]
    sig = twilio_signature(TOKEN, url, {"StatusCallbackEvent": events, "CallSid": "CA1"})
    form = MultiDict([("CallSid", "CA1")] + [("StatusCallbackEvent", e) for e in events])  # as a web framework parses it
    assert RequestValidator(TOKEN).validate(url, form, sig)


def test_a_different_token_or_field_breaks_the_signature() -> None:
    url = "http://127.0.0.1:9000/cb"
    params = {"AnsweredBy": "human"}
    sig = twilio_signature(TOKEN, url, params)
    assert not RequestValidator("x" * 32).validate(url, params, sig)
    assert not RequestValidator(TOKEN).validate(url, {"AnsweredBy": "machine_start"}, sig)
