"""``GET /api/audit``: the audit trail for admins, filtered, one page as JSON or all of it as a
download (``format=ndjson`` or ``csv``)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bridge.contract.protocol import dumps
from dashboard.api import BadRequest, csv_cell, error, int_arg, stream_id_ok
from dashboard.audit import DENIED, FAILED, OK, AuditQuery
from dashboard.extensions import services

audit_api = Blueprint("audit_api", __name__, url_prefix="/api")

EXPORT_MAX = 100_000
CSV_COLUMNS = (
    "id",
    "timestamp",
    "user",
    "role",
    "tenant",
    "action",
    "outcome",
    "status",
    "broker",
    "address",
)


def _time_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a Unix time in seconds, got {raw!r}") from None


def _query() -> AuditQuery:
    outcome = request.args.get("outcome") or None
    if outcome not in (None, OK, DENIED, FAILED):
        raise BadRequest(f"outcome must be {OK}, {DENIED} or {FAILED}")
    return AuditQuery(
        user=request.args.get("user") or None,
        action=request.args.get("action") or None,
        outcome=outcome,
        since=_time_arg("since"),
        until=_time_arg("until"),
    )


@audit_api.get("/audit")
def audit() -> Any:
    query = _query()
    log = services().audit
    kind = request.args.get("format", "json")
    if kind == "json":
        limit = int_arg("limit", 100, 1, 1000)
        before = request.args.get("before") or None
        if before is not None and not stream_id_ok(before):
            raise BadRequest("before must be a stream id such as 1718000000000-0 (use next_before)")
        entries, next_before = log.page(query, limit, before)
        return jsonify(entries=entries, next_before=next_before)
    if kind not in ("ndjson", "csv"):
        raise BadRequest("format must be json, ndjson or csv")
    rows = log.export(query, int_arg("limit", EXPORT_MAX, 1, EXPORT_MAX))
    body = _csv(rows) if kind == "csv" else (dumps(entry) + "\n" for entry in rows)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Response(
        body,
        mimetype="text/csv" if kind == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="dashboard-audit-{stamp}.{kind}"'},
    )


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow((*CSV_COLUMNS, "detail", "error"))
    for row in rows:
        cells = [csv_cell(row.get(column)) for column in CSV_COLUMNS]
        writer.writerow([*cells, csv_cell(dumps(row.get("detail") or {})), csv_cell(row.get("error"))])
    yield buffer.getvalue()


@audit_api.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> tuple[Response, int]:
    return error(str(exc), 400)
