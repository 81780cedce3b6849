"""RTP from Asterisk's externalMedia: receive (a port per call, or every call on one RtpHub
socket), parse, validate, pin the source, reorder, decode, hand on."""

from ari_amd.media.ports import PortPool, PortPoolExhausted
from ari_amd.media.receiver import FORMATS, AudioCallback, G711Callback, MediaFormat, ReceiverStats, RtpReceiver
from ari_amd.media.reorder import ReorderBuffer, ReorderStats
from ari_amd.media.rtp import RtpError, RtpPacket, build_packet, parse_packet, seq_add, seq_diff

__all__ = [
    "FORMATS",
    "AudioCallback",
    "G711Callback",
    "MediaFormat",
    "PortPool",
    "PortPoolExhausted",
    "ReceiverStats",
    "ReorderBuffer",
    "ReorderStats",
    "RtpError",
    "RtpPacket",
    "RtpReceiver",
    "build_packet",
    "parse_packet",
    "seq_add",
    "seq_diff",
]
