"""The HTTP surface: Twilio, Plivo/Vobiz and Telnyx dialects over the call engine."""

from ari_amd.api.app import create_app, outbox_for, serve
from ari_amd.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app", "outbox_for", "serve"]
