"""Users under /api/users (admins only, dashboard/policy.py) and ``POST /api/session/password``
(anyone, for themselves). A change to a user ends their sessions and closes their sockets on
every worker; passwords are taken, hashed and never answered.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from dashboard.access import current_principal
from dashboard.api import BadRequest, error
from dashboard.extensions import services
from dashboard.passwords import PasswordProblem, check_new_password
from dashboard.users import NoSuchUser, UserProblem

users_api = Blueprint("users_api", __name__, url_prefix="/api")

CREATE_FIELDS = ("username", "password", "role", "tenant", "broker")


def _body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True, force=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


@users_api.get("/users")
def list_users() -> Response:
    return jsonify(users=[user.public() for user in services().users.all()])


@users_api.post("/users")
def create_user() -> Any:
    body = _body()
    unknown = sorted(set(body) - set(CREATE_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; a new user has {', '.join(CREATE_FIELDS)}")
    user = services().users.add(
        body.get("username"), body.get("password"), body.get("role"), body.get("tenant"), body.get("broker")
    )
    return jsonify(user.public()), 201


@users_api.patch("/users/<username>")
def update_user(username: str) -> Any:
    found = services()
    user = found.users.update(username, **_body())
    found.auth.sessions.revoke_user(user.username)  # their sessions ended with the new stamp
    return jsonify(user.public())


@users_api.delete("/users/<username>")
def delete_user(username: str) -> Any:
    found = services()
    found.users.delete(username)
    found.auth.sessions.revoke_user(username)
    return jsonify(deleted=username)


@users_api.post("/session/password")
def change_own_password() -> Any:
    """A named user's new password: the current one first. Every other session of theirs ends;
    this one goes on."""
    principal = current_principal()
    if principal is None or not principal.named:
        return error(
            "the bootstrap admin's secret is DASHBOARD_TOKEN or DASHBOARD_PASSWORD: change it where the "
            "dashboard is configured",
            400,
        )
    body = _body()
    found = services()
    if found.users.verify(principal.name, body.get("current_password")) is None:
        return error("the current password is not right", 403)
    try:
        new = check_new_password(body.get("new_password"))
    except PasswordProblem as exc:
        raise BadRequest(str(exc)) from None
    user = found.users.update(principal.name, password=new)
    found.auth.sessions.revoke_user(user.username)
    found.auth.log_in(user)  # this browser stays in, with a session of the new stamp
    return jsonify(user.public())


@users_api.errorhandler(NoSuchUser)
def no_such_user(exc: NoSuchUser) -> tuple[Response, int]:
    return error(str(exc), 404)


@users_api.errorhandler(UserProblem)
@users_api.errorhandler(BadRequest)
def bad_user(exc: Exception) -> tuple[Response, int]:
    return error(str(exc), 400)
