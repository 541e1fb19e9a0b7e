"""The documents a user reads stay in step with the code."""

from __future__ import annotations

from bridge import config as bridge_config
from bridge.contract.env import markdown_table
from dashboard import config as dashboard_config
from tests.helpers import REPO


def test_configuration_doc_lists_every_variable_as_the_code_defines_it() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for variables in (bridge_config.VARIABLES, dashboard_config.VARIABLES):
        table = markdown_table(variables)
        assert table in doc, "docs/configuration.md is out of date: regenerate the table from VARIABLES"


def test_channels_doc_names_every_channel_and_key() -> None:
    from bridge.contract import protocol

    doc = (REPO / "docs" / "channels.md").read_text()
    names = [
        v for k, v in vars(protocol).items() if k.startswith(("CHANNEL_", "KEY_")) and isinstance(v, str)
    ]
    missing = [n for n in names if f"`{n}`" not in doc]
    assert not missing, f"docs/channels.md does not describe {missing}"
