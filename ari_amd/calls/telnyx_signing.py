"""Signing webhooks the way Telnyx does, so that Telnyx's own verifiers accept ours.

    telnyx-timestamp: Unix seconds
    telnyx-signature-ed25519: base64(Ed25519 signature of "{timestamp}|{body}")

Telnyx signs with its own key and publishes the public half; ari-amd signs with a key of its own,
and the integrator gives its public half (`ari-amd telnyx-public-key`) to the verifier where
Telnyx's would go. Verifiers refuse a timestamp more than 5 minutes off, so the outbox signs at
each attempt, not once at enqueue: a retry an hour later still verifies.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable
from pathlib import Path

from nacl.signing import SigningKey

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
SIGNER = "telnyx-ed25519"  # the outbox's name for this signer
KEY_FILE = "ari-amd-telnyx-ed25519.key"  # beside the outbox when no key is configured
SEED_BYTES = 32


class TelnyxSigner:
    def __init__(self, seed: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 signing key is {SEED_BYTES} bytes (got {len(seed)})")
        self._key = SigningKey(seed)
        self._clock = clock

    @classmethod
    def from_base64(cls, text: str, name: str = "telnyx.signing_key") -> TelnyxSigner:
        try:
            seed = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name} must be base64 (of a {SEED_BYTES}-byte Ed25519 seed)") from None
        if len(seed) != SEED_BYTES:
            raise ValueError(f"{name} must be base64 of {SEED_BYTES} bytes (got {len(seed)})")
        return cls(seed)

    @property
    def public_key(self) -> str:
        """Base64, as Telnyx's verifiers take their public key."""
        return base64.b64encode(bytes(self._key.verify_key)).decode()

    def headers(self, body: bytes | None) -> dict[str, str]:
        timestamp = str(int(self._clock()))
        signature = self._key.sign(timestamp.encode() + b"|" + (body or b"")).signature
        return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: base64.b64encode(signature).decode()}


def load_signer(configured: str, key_file: Path) -> TelnyxSigner:
    """The configured key; else the one kept in key_file, made (readable by its owner only) the
    first time, so that verifiers keep working across restarts."""
    if configured:
        return TelnyxSigner.from_base64(configured)
    try:
        return TelnyxSigner.from_base64(key_file.read_text(), name=str(key_file))
    except FileNotFoundError:
        pass
    text = base64.b64encode(os.urandom(SEED_BYTES)).decode()
    # Written whole under another name, then linked into place: a reader never sees half a key,
    # and of two processes starting at once, the second takes the first one's.
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    try:
        os.link(tmp, key_file)
    except FileExistsError:
        text = key_file.read_text()
    finally:
        tmp.unlink()
    return TelnyxSigner.from_base64(text, name=str(key_file))
