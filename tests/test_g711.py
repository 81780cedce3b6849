import numpy as np
import pytest

from ari_amd.detect.g711 import ALAW_TO_LINEAR, ULAW_TO_LINEAR, decode_alaw, decode_slin16, decode_ulaw, encode_ulaw


def test_ulaw_reference_points() -> None:
    # G.711 table values: 0x00 and 0x80 are the extremes, 0xFF and 0x7F are zero.
    assert ULAW_TO_LINEAR[0x00] == -32124
    assert ULAW_TO_LINEAR[0x80] == 32124
    assert ULAW_TO_LINEAR[0xFF] == 0
    assert ULAW_TO_LINEAR[0x7F] == 0
    assert ULAW_TO_LINEAR[0xFE] == 8  # the smallest positive step


def test_alaw_reference_points() -> None:
    assert ALAW_TO_LINEAR[0xD5] == 8
    assert ALAW_TO_LINEAR[0x55] == -8
    assert ALAW_TO_LINEAR[0xAA] == 32256
    assert ALAW_TO_LINEAR[0x2A] == -32256


def test_tables_are_monotonic_per_sign() -> None:
    # Within each sign half, mu-law codes decrease in magnitude as the code rises.
    neg = ULAW_TO_LINEAR[0x00:0x80].astype(int)
    assert np.all(np.diff(neg) > 0)
    pos = ULAW_TO_LINEAR[0x80:0x100].astype(int)
    assert np.all(np.diff(pos) < 0)


def test_ulaw_round_trip_error_is_within_a_quantisation_step() -> None:
    x = np.arange(-32000, 32000, 37, dtype=np.int16)
    y = decode_ulaw(encode_ulaw(x).tobytes()).astype(int)
    # mu-law steps grow with magnitude: 1/32 of the value plus a small constant bounds them.
    assert np.all(np.abs(y - x) <= np.abs(x) // 16 + 16)


def test_decoders_take_bytes() -> None:
    assert decode_ulaw(b"\xff\x00").tolist() == [0, -32124]
    assert decode_alaw(b"\xd5").tolist() == [8]


def test_slin16_is_big_endian() -> None:
    assert decode_slin16(b"\x01\x00\xff\xfe").tolist() == [256, -2]
    with pytest.raises(ValueError, match="odd length"):
        decode_slin16(b"\x00")
