"""The sandbox's HubSpot CRM and BambooHR endpoints: what the example lookup rules ask for, as documented publicly.

    HubSpot    GET /sandbox/hubspot/crm/v3/objects/<contacts|deals>/<id>?properties=a,b&associations=contacts
               GET /sandbox/hubspot/crm/v4/objects/<type>/<id>/associations/<to type>
               Authorization: Bearer sandbox-hubspot-token
    BambooHR   GET /sandbox/bamboohr/api/gateway.php/<company>/v1/employees/<id>/?fields=a,b
               Basic auth: user sandbox-bamboohr-key, any password

Seed data (restored by /sandbox/reset): HubSpot contact 201 (olu.ade@acme.example) on won deal 9001
(course_id 13), deal 9002 won without a contact; BambooHR employee 112 (Ana Silva, hired, Active) and
113 (Ben Okafor, Inactive).
"""

from __future__ import annotations

import base64
import copy
import hmac

from flask import jsonify, request

HUBSPOT_TOKEN = "sandbox-hubspot-token"
BAMBOOHR_API_KEY = "sandbox-bamboohr-key"

_STAMP = "2026-11-20T10:00:00.000Z"
SEED_HUBSPOT = {
    "contacts": {
        "201": {"email": "olu.ade@acme.example", "firstname": "Olu", "lastname": "Ade", "phone": "+44 20 7946 0101"},
        "202": {"email": "mary.ann.lee@acme.example", "firstname": "Mary Ann", "lastname": "Lee"},
    },
    "deals": {
        "9001": {"dealname": "Acme - Customer Service training", "dealstage": "closedwon", "pipeline": "default",
                 "amount": "1500", "closedate": "2026-11-24T16:00:00.000Z", "course_id": "13"},
        "9002": {"dealname": "Globex - Food Safety", "dealstage": "closedwon", "pipeline": "default", "amount": "900",
                 "course_id": "7"},
    },
}
# (from type, from id) -> [(to type, to id)]; HubSpot associations go both ways.
SEED_ASSOCIATIONS = [("deals", "9001", "contacts", "201")]
# HubSpot's own association type ids for the default labels.
_ASSOCIATION_TYPE_IDS = {("deals", "contacts"): 3, ("contacts", "deals"): 4}
_DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
SEED_BAMBOOHR = {
    "112": {"firstName": "Ana", "lastName": "Silva", "displayName": "Ana Silva", "workEmail": "ana.silva@example.com",
            "hireDate": "2026-12-01", "status": "Active", "jobTitle": "Store Manager", "department": "Operations"},
    "113": {"firstName": "Ben", "lastName": "Okafor", "displayName": "Ben Okafor", "workEmail": "ben.okafor@example.com",
            "hireDate": "2021-03-15", "terminationDate": "2026-11-30", "status": "Inactive", "jobTitle": "Cook",
            "department": "Kitchen"},
}


def seed() -> dict:
    """Return fresh lookup data: HubSpot objects and associations, BambooHR employees."""
    associations: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for from_type, from_id, to_type, to_id in SEED_ASSOCIATIONS:
        associations.setdefault((from_type, from_id), []).append((to_type, to_id))
        associations.setdefault((to_type, to_id), []).append((from_type, from_id))
    return {"hubspot": copy.deepcopy(SEED_HUBSPOT), "associations": associations,
            "bamboohr": copy.deepcopy(SEED_BAMBOOHR)}


def _hubspot_error(status: int, message: str, category: str):
    return jsonify({"status": "error", "message": message, "correlationId": "00000000-0000-4000-8000-000000000000",
                    "category": category}), status


def _hubspot_denied():
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {HUBSPOT_TOKEN}".encode()):
        return _hubspot_error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                              "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                              "INVALID_AUTHENTICATION")
    return None


def _plural(object_type: str) -> str:
    # HubSpot accepts the singular (deal) as well as the plural (deals) in object paths.
    return object_type if object_type.endswith("s") else f"{object_type}s"


def _listed(name: str) -> list[str]:
    return [part.strip() for value in request.args.getlist(name) for part in value.split(",") if part.strip()]


def hs_object(state, object_type: str, object_id: str):
    denied = _hubspot_denied()
    if denied:
        return denied
    object_type = _plural(object_type)
    with state.lock:
        objects = state.lookups["hubspot"].get(object_type)
        if objects is None:
            return _hubspot_error(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")
        record = objects.get(object_id)
        if record is None:
            return _hubspot_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        wanted = _listed("properties") or _DEFAULT_PROPERTIES[object_type]
        stamps = {"createdate": _STAMP, "lastmodifieddate": _STAMP, "hs_lastmodifieddate": _STAMP, "hs_object_id": object_id}
        properties = {name: record.get(name, stamps.get(name)) for name in wanted}
        reply = {"id": object_id, "properties": properties, "createdAt": _STAMP, "updatedAt": _STAMP, "archived": False}
        linked = state.lookups["associations"].get((object_type, object_id), [])
        associations = {}
        for to_type in map(_plural, _listed("associations")):
            results = [{"id": to_id, "type": f"{object_type[:-1]}_to_{to_type[:-1]}"} for kind, to_id in linked if kind == to_type]
            if results:
                associations[to_type] = {"results": results}
        if associations:
            reply["associations"] = associations
        return jsonify(reply)


def hs_associations(state, object_type: str, object_id: str, to_type: str):
    denied = _hubspot_denied()
    if denied:
        return denied
    object_type, to_type = _plural(object_type), _plural(to_type)
    with state.lock:
        if object_id not in state.lookups["hubspot"].get(object_type, {}):
            return _hubspot_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        linked = [to_id for kind, to_id in state.lookups["associations"].get((object_type, object_id), []) if kind == to_type]
    type_id = _ASSOCIATION_TYPE_IDS.get((object_type, to_type), 1)
    return jsonify({"results": [{"toObjectId": int(to_id), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]} for to_id in linked]})


def bh_employee(state, company: str, employee_id: str):
    auth = request.headers.get("Authorization", "")
    try:
        user = base64.b64decode(auth.removeprefix("Basic ").encode(), validate=True).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        user = ""
    if not auth.startswith("Basic ") or not hmac.compare_digest(user.encode(), BAMBOOHR_API_KEY.encode()):
        # BambooHR answers a bad key with 401 and an empty body.
        return "", 401
    employee_id = employee_id.removesuffix("/")  # BambooHR documents the path with a trailing slash; both work
    with state.lock:
        employee = state.lookups["bamboohr"].get(employee_id)
        if employee is None:
            return "", 404
        fields = _listed("fields") or ["firstName", "lastName"]
        reply = {"id": employee_id, **{name: employee.get(name) for name in fields}}
    if "json" not in request.headers.get("Accept", ""):
        # BambooHR answers XML unless asked for JSON; the bridge always asks, a client that forgets sees why.
        return "<employee/>", 200, {"Content-Type": "application/xml"}
    return jsonify(reply)


ROUTES = [  # views named hs_/bh_ are faulted and recorded like the LMS endpoints
    ("/hubspot/crm/v3/objects/<object_type>/<object_id>", ["GET"], hs_object),
    ("/hubspot/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>", ["GET"], hs_associations),
    ("/bamboohr/api/gateway.php/<company>/v1/employees/<path:employee_id>", ["GET"], bh_employee),
]
LOOKUP_PREFIXES = {"hs_": "hubspot", "bh_": "bamboohr"}
