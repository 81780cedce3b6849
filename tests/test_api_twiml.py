"""The TwiML/Plivo XML parser and the rules turning <Play> and To into Asterisk terms."""

from __future__ import annotations

import pytest

from ari_amd.api import forms
from ari_amd.api.errors import ApiError
from ari_amd.api.twiml import TwimlError, media_uri, parse


def test_parse_reads_verbs_attributes_and_nested_nouns() -> None:
    verbs = parse(
        b"<?xml version='1.0' encoding='UTF-8'?>"
        b"<Response xmlns='http://example.test/ns'><Pause length='2'/>"
        b"<Dial timeout='10' action='/next'><Number>+15550111</Number><Sip>sip:a@b</Sip></Dial></Response>"
    )
    assert [v.name for v in verbs] == ["Pause", "Dial"]
    assert verbs[0].attrs == {"length": "2"}
    assert [(c.name, c.text) for c in verbs[1].children] == [("Number", "+15550111"), ("Sip", "sip:a@b")]


def test_plivo_names_map_to_twimls() -> None:
    verbs = parse("<Response><Speak>Hi</Speak><Wait length='1'/><Dial><User>sip:x@y</User></Dial></Response>")
    assert [v.name for v in verbs] == ["Say", "Pause", "Dial"]
    assert verbs[2].children[0].name == "Sip"


@pytest.mark.parametrize(
    "doc",
    ["", "<Response>", "<Play>x</Play>", "plain text", "<!DOCTYPE r [<!ENTITY x 'y'>]><Response>&x;</Response>"],
)
def test_what_is_not_a_response_is_refused(doc: str) -> None:
    with pytest.raises(TwimlError):
        parse(doc)


@pytest.mark.parametrize(
    ("target", "uri"),
    [
        ("hello-world", "sound:hello-world"),
        ("custom/offer_2", "sound:custom/offer_2"),
        ("https://cdn.example.test/a.wav", "sound:https://cdn.example.test/a.wav"),
        ("sound:beep", "sound:beep"),
        ("tone:ring", "tone:ring"),
        ("digits:123", "digits:123"),
        ("../../etc/passwd", None),
        ("file:///etc/passwd", None),
        ("", None),
    ],
)
def test_play_targets_become_media_uris(target: str, uri: str | None) -> None:
    assert media_uri(target) == uri


@pytest.mark.parametrize(
    ("to", "endpoint"),
    [
        ("+15550100", "PJSIP/+15550100@trunk"),
        ("+1 (555) 010-0100", "PJSIP/+15550100100@trunk"),
        ("1234", "PJSIP/1234@trunk"),
        ("PJSIP/alice", "PJSIP/alice"),
        ("PJSIP/sipp/sip:bob@127.0.0.1:5070", "PJSIP/sipp/sip:bob@127.0.0.1:5070"),
        ("sip:bob@pbx.example.test", "PJSIP/trunk/sip:bob@pbx.example.test"),
        ("sip:bob@10.0.0.1:5062;transport=udp", "PJSIP/trunk/sip:bob@10.0.0.1:5062;transport=udp"),
    ],
)
def test_to_becomes_an_endpoint(to: str, endpoint: str) -> None:
    assert forms.endpoint(to, "PJSIP/{number}@trunk", "trunk") == endpoint


@pytest.mark.parametrize(
    "to",
    ["PJSIP/a&PJSIP/b", "PJSIP/a,b", "PJSIP/a)", "PJSIP/ a", "SIP/old", "Local/1@ctx", "sip:", "sip:a b@c", "+1555abc", "client:bob"],
)
def test_anything_else_is_refused_naming_to(to: str) -> None:
    with pytest.raises(ApiError) as e:
        forms.endpoint(to, "PJSIP/{number}@trunk", "trunk")
    assert e.value.status == 400 and e.value.param == "To" and "To" in e.value.message


@pytest.mark.parametrize(("raw", "value"), [("True", True), ("false", False), ("TRUE", True), (None, False), ("", False)])
def test_booleans_as_the_twilio_library_sends_them(raw: str | None, value: bool) -> None:
    assert forms.boolean("AsyncAmd", raw) is value
