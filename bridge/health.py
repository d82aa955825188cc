"""Health endpoints for a PaaS router."""

from flask import Blueprint, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """Say that the process is up."""
    return jsonify(status="ok")
