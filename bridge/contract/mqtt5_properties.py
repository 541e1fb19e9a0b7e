"""MQTT 5 publish properties: checked once (commands, the dashboard, templates), converted to and
from paho's ``Properties``, and written into the message JSON.

The JSON names (docs/channels.md, DESIGN.md "Names to use") are ``content_type``,
``payload_format_indicator``, ``message_expiry_interval``, ``response_topic``, ``correlation_data``
(base64) and ``user_properties`` (``[[key, value], …]``, repeats allowed, order kept). The broker's
own per-connection properties (subscription identifier, topic alias) are never passed on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract.errors import InvalidCommand

# JSON name -> paho's attribute name
PAHO_NAMES = {
    "content_type": "ContentType",
    "payload_format_indicator": "PayloadFormatIndicator",
    "message_expiry_interval": "MessageExpiryInterval",
    "response_topic": "ResponseTopic",
    "correlation_data": "CorrelationData",
    "user_properties": "UserProperty",
}
PROPERTY_NAMES = tuple(PAHO_NAMES)
MAX_STRING_BYTES = 65_535  # an MQTT UTF-8 string or binary field
MAX_USER_PROPERTIES = 100
NEEDS_MQTT5 = (
    "MQTT 5 properties need the bridge on MQTT 5, and it runs MQTT 3.1.1 (MQTT_PROTOCOL); "
    "publish without properties or switch the bridge to MQTT 5"
)


def validate(value: object) -> dict[str, Any]:
    """The publish properties of a command, checked; ``{}`` for none (absent, null or empty).

    Raises InvalidCommand with a sentence naming the property and what it must be.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidCommand("properties must be an object of MQTT 5 publish properties")
    checked: dict[str, Any] = {}
    for name, item in value.items():
        if name not in PAHO_NAMES:
            raise InvalidCommand(
                f"unknown MQTT 5 property {str(name)[:80]!r}; known: {', '.join(PROPERTY_NAMES)}"
            )
        checked[name] = _CHECKS[name](item)
    return checked


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCommand(f"property {name} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidCommand(f"property {name} is not valid UTF-8 text") from None
    if size > MAX_STRING_BYTES:
        raise InvalidCommand(f"property {name} is {size:,} bytes; MQTT allows at most {MAX_STRING_BYTES:,}")
    if "\x00" in value:
        raise InvalidCommand(f"property {name} contains U+0000, which MQTT forbids in a string")
    return value


def _content_type(value: object) -> str:
    return _text("content_type", value)


def _payload_format(value: object) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise InvalidCommand("property payload_format_indicator must be 0 (bytes) or 1 (UTF-8 text)")
    return int(value)


def _expiry(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise InvalidCommand(
            "property message_expiry_interval must be a whole number of seconds from 0 to 4294967295"
        )
    return value


def _response_topic(value: object) -> str:
    text = _text("response_topic", value)
    if not text:
        raise InvalidCommand("property response_topic is empty")
    if "+" in text or "#" in text:
        raise InvalidCommand("property response_topic contains a wildcard (+ or #); it must be a topic name")
    return text


def _correlation(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCommand("property correlation_data must be a base64 string")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidCommand("property correlation_data is not valid base64") from None
    if len(data) > MAX_STRING_BYTES:
        raise InvalidCommand(f"property correlation_data is over {MAX_STRING_BYTES:,} bytes once decoded")
    return value


def _user_properties(value: object) -> list[list[str]]:
    if not isinstance(value, list):
        raise InvalidCommand(
            'property user_properties must be a list of [key, value] pairs, e.g. [["unit", "C"]]'
        )
    if len(value) > MAX_USER_PROPERTIES:
        raise InvalidCommand(
            f"property user_properties has {len(value)} pairs; the limit is {MAX_USER_PROPERTIES}"
        )
    pairs = []
    for index, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidCommand(f"user_properties[{index}] must be a [key, value] pair of two strings")
        key = _text(f"user_properties[{index}] key", pair[0])
        item = _text(f"user_properties[{index}] value", pair[1])
        pairs.append([key, item])
    return pairs


_CHECKS: dict[str, Any] = {
    "content_type": _content_type,
    "payload_format_indicator": _payload_format,
    "message_expiry_interval": _expiry,
    "response_topic": _response_topic,
    "correlation_data": _correlation,
    "user_properties": _user_properties,
}


def to_paho(properties: Mapping[str, Any]) -> Properties | None:
    """paho's PUBLISH properties for checked ones (``validate``); None for none."""
    if not properties:
        return None
    packed = Properties(PacketTypes.PUBLISH)
    for name, value in properties.items():
        if name == "correlation_data":
            value = base64.b64decode(value)
        elif name == "user_properties":
            value = [(key, item) for key, item in value]
        setattr(packed, PAHO_NAMES[name], value)
    return packed


def from_paho(properties: Any) -> dict[str, Any] | None:
    """The JSON properties of a received message, or None when it had none of the six.

    Reads paho's attributes straight from the object: paho sets only those the packet held.
    """
    held = getattr(properties, "__dict__", None)
    if not held:
        return None
    found: dict[str, Any] = {}
    for name, paho_name in PAHO_NAMES.items():
        if paho_name not in held:
            continue
        value = held[paho_name]
        if name == "correlation_data":
            value = base64.b64encode(bytes(value)).decode("ascii")
        elif name == "user_properties":
            value = [[key, item] for key, item in value]
        found[name] = value
    return found or None
