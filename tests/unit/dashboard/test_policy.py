"""The policy's own logic: who may do what, and which topics and filters are a tenant's."""

from __future__ import annotations

import pytest

from dashboard.policy import (
    ADMIN,
    BOOTSTRAP,
    OPERATOR,
    RULES,
    UNRULED,
    VIEWER,
    OutOfScope,
    Principal,
    TopicScope,
    decide,
    route_key,
    rule_for,
)

ACME = TopicScope("org/eu", "acme")


@pytest.mark.parametrize(
    ("topic", "theirs"),
    [
        ("org/eu/acme", True),
        ("org/eu/acme/", True),
        ("org/eu/acme/site/1/temp", True),
        ("org/eu/acmex/temp", False),
        ("org/eu/ACME/temp", False),
        ("org/eu/beta/temp", False),
        ("org/eu", False),
        ("org/us/acme/temp", False),
        ("/org/eu/acme/temp", False),
        ("$SYS/broker/uptime", False),
        (None, False),
    ],
)
def test_a_tenants_topics_are_its_prefix_and_everything_under_it(topic: object, theirs: bool) -> None:
    assert ACME.allows_topic(topic) is theirs


@pytest.mark.parametrize(
    ("topic_filter", "inside"),
    [
        ("org/eu/acme/#", True),
        ("org/eu/acme/+/temp", True),
        ("org/eu/acme", True),
        ("org/eu/#", False),
        ("org/eu/+/temp", False),
        ("org/+/acme/#", False),
        ("#", False),
        ("+/#", False),
        ("$share/g/org/eu/acme/#", False),
        ("org/eu/acme+/#", False),
    ],
)
def test_a_filter_is_the_tenants_only_when_its_first_levels_are_spelled_out(
    topic_filter: str, inside: bool
) -> None:
    assert ACME.contains(topic_filter) is inside


def test_reads_narrow_everything_to_the_tenant_and_refuse_the_rest_in_words() -> None:
    assert ACME.narrow(None) == ACME.narrow("") == ACME.narrow("#") == "org/eu/acme/#"
    assert ACME.narrow("org/eu/acme/+/temp") == "org/eu/acme/+/temp"
    with pytest.raises(
        OutOfScope, match="reaches outside your tenant's topics: use a filter under org/eu/acme/#"
    ):
        ACME.narrow("org/eu/+/temp")
    with pytest.raises(OutOfScope, match="you can subscribe under org/eu/acme/# only"):
        ACME.check_filter("#", "subscribe")  # a write is never widened or narrowed
    with pytest.raises(OutOfScope, match="you can publish under org/eu/acme/# only"):
        ACME.check_topic("org/eu/beta/valve")


def test_a_topic_tree_may_show_the_levels_that_lead_to_the_tenant() -> None:
    assert ACME.on_path("org") and ACME.on_path("org/eu") and ACME.on_path("org/eu/acme/x")
    assert not ACME.on_path("org/us") and not ACME.on_path("org/eu/beta") and not ACME.on_path("other")


def test_decide_refuses_in_words_and_lets_the_rest_through() -> None:
    publish = RULES["POST /api/publish"]
    stats = RULES["GET /api/broker/stats"]
    viewer, tenant = Principal("vic", VIEWER), Principal("tom", OPERATOR, "acme", "default")

    assert decide(None, publish, "default", "t").status == 401  # type: ignore[union-attr]
    refused = decide(viewer, publish, "default", "t")
    assert refused is not None and refused.status == 403
    assert refused.message == "publishing needs the operator role or higher; vic is a viewer"
    assert decide(tenant, publish, "default", "t") is None
    assert decide(tenant, publish, "plant-2", "t").message == "tom may use broker 'default' only"  # type: ignore[union-attr]
    assert "not open to tenant users: tom sees t/acme/# only" in decide(tenant, stats, "default", "t").message  # type: ignore[union-attr]
    assert decide(BOOTSTRAP, RULES["DELETE /api/users/<username>"], "plant-2", "t") is None
    assert decide(Principal("ada", OPERATOR), UNRULED, "default", "t").status == 403  # type: ignore[union-attr]
    assert decide(Principal("ada", ADMIN), UNRULED, "default", "t") is None


def test_per_broker_routes_share_their_api_twins_rule() -> None:
    assert route_key("HEAD", "/api/brokers/<broker>/messages") == "GET /api/messages"
    assert rule_for("POST", "/api/brokers/<broker>/publish") is RULES["POST /api/publish"]
    assert rule_for("POST", "/api/something-new") is UNRULED
