"""An LMS sandbox: Course Toolkit and Coursebox emulated in memory, every call recorded, faults on demand.

Mounted at /sandbox (by the main app, or alone by `create_sandbox_app()`), so URLs are the same either way:

    Course Toolkit   POST /sandbox/coursetoolkit/api     api-user "sandbox", api-key "sandbox-key"
    Coursebox        base /sandbox/coursebox              login admin@sandbox.test / sandbox-password

Seed data, restored by every reset:
    Course Toolkit   user 1001 learner@sandbox.test, permissions "42 all" and "7 m1,m2"
    Coursebox        admin user 1 (the login above); courses 42 "Onboarding", 7 "Food Safety",
                     13 "Customer Service"; activities 501 and 502 in course 42

Control endpoints (never recorded, never faulted):
    GET /sandbox/calls       every LMS call received, oldest first, secrets redacted
    DELETE /sandbox/calls    forget the calls only
    POST /sandbox/reset      restore the seed data; forget calls, tokens and faults
    GET /sandbox/state       users, courses, enrolments and invitations of both LMSs
    POST /sandbox/faults     {"status": 500, "count": 3}, {"status": 429, "retry_after": 2},
                             {"drop": true, "count": 2} (close the connection without a reply),
                             {"drop": "after"} (perform the call, then close without the reply: the
                             lost-reply window), {"hold": 3} (perform the call, then keep the reply 3 s),
                             {"latency": 0.5}; optional "path" (a substring the call's path must
                             contain) and "body" (raw text to reply instead of the JSON error)
    GET|DELETE /sandbox/faults  show | clear the faults
    DELETE /sandbox/tokens   expire every Coursebox token now

The HubSpot CRM and BambooHR endpoints that the example lookup rules read are in sandbox_lookups.py.
"""

from __future__ import annotations

import copy
import hmac
import json
import socket
import time
from functools import partial

from flask import Blueprint, Flask, Response, g, jsonify, request

from bridge.lms.coursetoolkit import DEFAULTS as COURSETOOLKIT_DEFAULTS
from bridge.sandbox_lookups import LOOKUP_PREFIXES
from bridge.sandbox_lookups import ROUTES as LOOKUP_ROUTES
from bridge.sandbox_state import (  # noqa: F401
    COURSEBOX_EMAIL,
    COURSEBOX_PASSWORD,
    COURSETOOLKIT_API_KEY,
    COURSETOOLKIT_API_USER,
    SandboxState,
    fault_problem,
    now_iso,
    redact,
)


def loopback_error(status: int, message: str, code: str | None = None) -> tuple[Response, int]:
    """Answer the way Coursebox's LoopBack API does: {"error": {statusCode, name, message}}."""
    error = {"statusCode": status, "name": "Error", "message": message, **({"code": code} if code else {})}
    return jsonify({"error": error}), status


def json_param(name: str):
    """Parse a JSON-encoded query parameter, None if absent or unreadable."""
    try:
        return json.loads(request.args[name])
    except (KeyError, ValueError):
        return None


def public_user(user: dict) -> dict:
    """Return a Coursebox user as the API shows it."""
    return {key: value for key, value in user.items() if key != "password"}


# --- Course Toolkit -------------------------------------------------------------------------

TOOLKIT_ACTIONS = {name: action for action, name in COURSETOOLKIT_DEFAULTS["actions"].items()}


def toolkit_reply(code: int, description: str = "", /, **fields) -> Response:
    """Answer as Course Toolkit does: HTTP 200 with `response` 0 for success."""
    return jsonify({"response": code, "response_description": description, **fields})


def ct_api(state: SandboxState):
    form = request.form
    if form.get("api-user") != COURSETOOLKIT_API_USER or \
            not hmac.compare_digest(form.get("api-key", ""), COURSETOOLKIT_API_KEY):
        return toolkit_reply(1, "Authentication failed: invalid api-user or api-key")
    action = TOOLKIT_ACTIONS.get(form.get("api-action", ""))
    if action is None:
        return toolkit_reply(2, f"Unknown api-action {form.get('api-action', '')!r}")
    with state.lock:
        users = state.users["coursetoolkit"]
        if action == "create_user":
            email = form.get("email", "").strip()
            if not email:
                return toolkit_reply(3, "Missing required field: email")
            for user in users.values():
                if user["email"].lower() == email.lower():
                    return toolkit_reply(0, "User already exists", userid=user["userid"], email=user["email"])
            fields = {k: v for k, v in form.items() if not k.startswith("api-")}
            user = {"first_name": "", "last_name": "", **fields, "email": email,
                    "userid": str(state.new_id("coursetoolkit")), "permissions": {}}
            users[user["userid"]] = user
            return toolkit_reply(0, "User created", userid=user["userid"], email=email)
        user = users.get(form.get("userid", "").strip())
        if user is None:
            return toolkit_reply(4, f"User not found: {form.get('userid', '')!r}")
        if action == "remove_user":
            del users[user["userid"]]
            return toolkit_reply(0, "User removed", userid=user["userid"])
        lines = [f"{course} {'all' if p == 'all' else ','.join(p)}" for course, p in user["permissions"].items()]
        details = {k: v for k, v in user.items() if k != "permissions"}
        return toolkit_reply(0, **details, permissions="\n".join(lines))


# --- Coursebox -----------------------------------------------------------------------------

def cb_login(state: SandboxState):
    """Log a user in by email and password (the guide: "authenticate users with their email and password")."""
    body = request.get_json(silent=True) or {}
    email = str(body.get("email", "")).strip().lower()
    with state.lock:
        user = next((u for u in state.users["coursebox"].values() if u["email"].lower() == email), None)
        known = state.passwords.get(str(user["id"]), "") if user else ""
    if user is None or not known or not hmac.compare_digest(str(body.get("password", "")), known):
        return loopback_error(401, "login failed", "LOGIN_FAILED")
    token = state.issue_token()
    return jsonify({"token": {"id": token, "ttl": state.token_ttl, "created": now_iso(), "userId": user["id"]}})


def cb_create_account(state: SandboxState):
    user = ((request.get_json(silent=True) or {}).get("data") or {}).get("user") or {}
    email = str(user.get("email", "")).strip()
    if not email or not user.get("password"):
        return loopback_error(422, "The `WineUser` instance is not valid. Details: `email`, `password` are required.")
    with state.lock:
        if any(u["email"].lower() == email.lower() for u in state.users["coursebox"].values()):
            return loopback_error(422, "The `WineUser` instance is not valid. Details: `email` Email already exists.")
        first, last = user.get("firstName", ""), user.get("lastName", "")
        record = {"id": state.new_id("coursebox"), "email": email, "firstName": first, "lastName": last,
                  "fullName": f"{first} {last}".strip(), "isAdmin": False, "createdAt": now_iso()}
        state.users["coursebox"][str(record["id"])] = record
        state.passwords[str(record["id"])] = str(user["password"])
        return jsonify(public_user(record))


def cb_get_user(state: SandboxState, userid: str):
    with state.lock:
        user = state.users["coursebox"].get(userid)
        return jsonify(public_user(user)) if user else loopback_error(404, f'Unknown "WineUser" id "{userid}".')


def cb_update_user(state: SandboxState):
    userid = request.args.get("id", "")
    body = request.get_json(silent=True) or {}
    attributes = body.get("attributes")
    if not isinstance(attributes, dict):
        return loopback_error(400, "attributes must be an object")
    if "id" in body and str(body["id"]) != userid:
        return loopback_error(400, f"id {body['id']!r} does not match the id {userid!r} of the query")
    with state.lock:
        user = state.users["coursebox"].get(userid)
        if user is None:
            return loopback_error(404, f'Unknown "WineUser" id "{userid}".')
        user.update({k: v for k, v in attributes.items() if k not in ("id", "password", "credentials")})
        return jsonify(public_user(user))


def cb_invite(state: SandboxState):
    body = request.get_json(silent=True) or {}
    data = body.get("data") or {}
    course, email = str(body.get("courseId", data.get("courseid", ""))), str(data.get("email", "")).strip()
    if not email:
        return loopback_error(400, "data.email is required")
    with state.lock:
        if course not in state.courses:
            return loopback_error(404, f'Unknown "Course" id "{course}".')
        state.invites.append({"courseId": int(course), "email": email, "firstName": data.get("firstName", ""),
                              "lastName": data.get("lastName", ""), "title": body.get("title", ""), "at": now_iso()})
    return jsonify({"success": True, "courseId": int(course), "email": email})


def cb_enrol(state: SandboxState, courseid: str):
    body = request.get_json(silent=True) or {}
    userid = str(body.get("userId", ""))
    if "id" in body and str(body["id"]) != courseid:
        return loopback_error(400, f"id {body['id']!r} does not match the course {courseid!r} in the path")
    with state.lock:
        if courseid not in state.courses:
            return loopback_error(404, f'Unknown "Course" id "{courseid}".')
        if userid not in state.users["coursebox"]:
            return loopback_error(404, f'Unknown "WineUser" id "{userid}".')
        if int(userid) not in state.enrollments[courseid]:
            state.enrollments[courseid].append(int(userid))
    return jsonify({"id": int(courseid), "userId": int(userid), "enrolled": True})


def cb_unenrol(state: SandboxState, courseid: str):
    userid = request.args.get("userid", "")
    if not userid.isdigit():
        return loopback_error(400, "userid is required")
    with state.lock:
        if courseid not in state.courses:
            return loopback_error(404, f'Unknown "Course" id "{courseid}".')
        learners = state.enrollments[courseid]
        count = learners.count(int(userid))
        learners[:] = [learner for learner in learners if learner != int(userid)]
    return jsonify({"count": count})


def cb_find_courses(state: SandboxState):
    if not isinstance(json_param("pageOptions"), dict):
        return loopback_error(400, "pageOptions must be a JSON object")
    with state.lock:
        return jsonify(list(state.courses.values()))


def cb_find_course(state: SandboxState):
    with state.lock:
        course = state.courses.get(request.args.get("id", ""))
        return jsonify(course) if course else loopback_error(404, f'Unknown "Course" id "{request.args.get("id")}".')


def cb_learners(state: SandboxState, courseid: str):
    with state.lock:
        if courseid not in state.courses:
            return loopback_error(404, f'Unknown "Course" id "{courseid}".')
        users = state.users["coursebox"]
        return jsonify([public_user(users[str(uid)]) for uid in state.enrollments[courseid] if str(uid) in users])


def cb_activity(state: SandboxState, activityid: str):
    with state.lock:
        activity = state.activities.get(activityid)
        return jsonify(activity) if activity else loopback_error(404, f'Unknown "Activity" id "{activityid}".')


def cb_admins(state: SandboxState):
    params = json_param("params")
    if not isinstance(params, dict):
        return loopback_error(400, "params must be a JSON object")
    ids = [part.strip() for part in str(params.get("ids", "")).split(",") if part.strip()]
    with state.lock:
        if not any(course in state.courses for course in ids):
            return jsonify([])
        return jsonify([public_user(u) for u in state.users["coursebox"].values() if u.get("isAdmin")])


def lms_unknown(state: SandboxState, lms: str, rest: str):
    return loopback_error(404, f"There is no method to handle {request.method} /{rest}")


# --- Control -------------------------------------------------------------------------------

def calls(state: SandboxState):
    with state.lock:
        if request.method == "DELETE":
            state.calls.clear()
        return jsonify({"calls": copy.deepcopy(state.calls)})


def reset(state: SandboxState):
    state.reset()
    return jsonify({"reset": True})


def snapshot(state: SandboxState):
    return jsonify(state.snapshot())


def expire_tokens(state: SandboxState):
    state.expire_tokens()
    return jsonify({"tokens": 0})


def faults(state: SandboxState):
    spec = request.get_json(silent=True) if request.method == "POST" else {}
    problem = fault_problem(spec)
    if problem:
        return jsonify({"error": problem}), 400
    return jsonify(state.set_faults(spec, clear=request.method == "DELETE"))


ROUTES = [  # (rule, methods, view); views named ct_/cb_/lms_ are LMS endpoints: faulted and recorded
    ("/coursetoolkit/api", ["POST"], ct_api),
    ("/coursebox/auth/login", ["POST"], cb_login),
    ("/coursebox/api/wineusers/createAccount", ["POST"], cb_create_account),
    ("/coursebox/api/WineUsers/updateMainAttributes", ["POST"], cb_update_user),
    ("/coursebox/api/WineUsers/getUserForMentio", ["GET"], cb_admins),
    ("/coursebox/api/WineUsers/<userid>", ["GET"], cb_get_user),
    ("/coursebox/api/Courses/inviteUserForCourse", ["POST"], cb_invite),
    ("/coursebox/api/Courses/findCourses", ["GET"], cb_find_courses),
    ("/coursebox/api/Courses/findCourse", ["GET"], cb_find_course),
    ("/coursebox/api/Courses/<courseid>/enrolUser", ["POST"], cb_enrol),
    ("/coursebox/api/Courses/<courseid>/users", ["DELETE"], cb_unenrol),
    ("/coursebox/api/Courses/<courseid>/allLearners", ["GET"], cb_learners),
    ("/coursebox/api/Activities/<activityid>", ["GET"], cb_activity),
    *LOOKUP_ROUTES,
    ("/<any(coursebox, coursetoolkit, hubspot, bamboohr):lms>/<path:rest>", ["GET", "POST", "PUT", "PATCH", "DELETE"], lms_unknown),
    ("/calls", ["GET", "DELETE"], calls),
    ("/reset", ["POST"], reset),
    ("/state", ["GET"], snapshot),
    ("/faults", ["GET", "POST", "DELETE"], faults),
    ("/tokens", ["DELETE"], expire_tokens),
]


def drop_connection():
    """Close the client's connection without a reply, as a crashed LMS or a proxy timing out would."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:  # the Flask test client has no socket to close
        return loopback_error(500, "sandbox fault: this server cannot drop a connection")
    request.get_data(parse_form_data=True)  # read the body while the socket is open, so the call log has it
    # Closed once the call is in the log (record_call), so a client's next call is never logged before this one.
    g.sandbox_dropped = sock
    # The server's write of this reply fails on the closed socket; both servers treat that as a client gone.
    return Response(status=500)


def lms_of(view: str) -> str | None:
    """Say which LMS an endpoint emulates, None for the control endpoints."""
    if view.startswith("lms_"):
        return (request.view_args or {}).get("lms")
    return {"ct_": "coursetoolkit", "cb_": "coursebox", **LOOKUP_PREFIXES}.get(view[:3])


def create_sandbox_blueprint(state: SandboxState | None = None) -> Blueprint:
    """Create the sandbox's routes over a state (a fresh one by default); mount it at /sandbox."""
    state = SandboxState() if state is None else state
    blueprint = Blueprint("sandbox", __name__)
    blueprint.sandbox_state = state  # so tests of a host app can reach it via app.blueprints["sandbox"]
    for rule, methods, view in ROUTES:
        blueprint.add_url_rule(rule, view.__name__, partial(view, state), methods=methods)

    @blueprint.before_request
    def inject_faults():
        view = (request.endpoint or "").rsplit(".", 1)[-1]
        g.sandbox_lms, g.sandbox_fault = lms_of(view), False
        if g.sandbox_lms is None:
            return None
        latency, fault = state.take_fault(request.path)
        if latency:
            time.sleep(latency)  # outside the lock, so a slow call does not stall the others
        if fault is not None:
            g.sandbox_fault = True
            if fault["drop"] == "after":
                # Performed like any call below; record_call then closes the connection instead of replying.
                g.sandbox_drop_after = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
                fault = None
            elif fault["drop"]:
                return drop_connection()
            elif fault["hold"]:
                g.sandbox_hold = float(fault["hold"])  # performed below; record_call keeps the reply that long
                fault = None
        if fault is not None:
            if fault["body"] is not None:
                response = Response(str(fault["body"]), fault["status"], content_type="text/html; charset=utf-8")
            else:
                response = loopback_error(fault["status"], f"sandbox fault: injected HTTP {fault['status']}")[0]
                response.status_code = fault["status"]
            if fault["retry_after"] is not None:
                response.headers["Retry-After"] = str(fault["retry_after"])
            return response
        token = request.headers.get("X-Access-Token")
        if view.startswith("cb_") and view != "cb_login" and not state.token_valid(token):
            return loopback_error(401, "Authorization Required", "AUTHORIZATION_REQUIRED")
        return None

    @blueprint.after_request
    def record_call(response: Response) -> Response:
        if getattr(g, "sandbox_lms", None) is None:
            return response
        if request.is_json:
            body = request.get_json(silent=True)
        elif request.form:
            body = request.form.to_dict()
        else:
            body = request.get_data(as_text=True)[:2000] or None
        headers = {name: request.headers[name] for name in ("X-Access-Token", "User-Agent") if name in request.headers}
        if getattr(g, "sandbox_drop_after", None) is not None:
            g.sandbox_dropped = g.sandbox_drop_after
        dropped = getattr(g, "sandbox_dropped", None) is not None
        call = {"time": now_iso(), "lms": g.sandbox_lms, "method": request.method, "path": request.path,
                "query": redact(request.args.to_dict()), "body": redact(body), "headers": redact(headers),
                "status": None if dropped else response.status_code, "fault": g.sandbox_fault, "dropped": dropped,
                "performed": not dropped or getattr(g, "sandbox_drop_after", None) is not None}
        with state.lock:
            state.calls.append(call)
        if dropped:
            g.sandbox_dropped.shutdown(socket.SHUT_RDWR)
        if getattr(g, "sandbox_hold", None):
            time.sleep(g.sandbox_hold)  # performed and logged, the reply not sent yet: a client killed now loses it
        return response

    @blueprint.after_request
    def keep(response: Response) -> Response:
        # Written before the reply leaves: a user the bridge was told about survives a restart of the sandbox.
        if request.method not in ("GET", "HEAD"):
            state.save()
        return response

    return blueprint


def create_sandbox_app(state: SandboxState | None = None) -> Flask:
    """Create an app that serves only the sandbox, at the same /sandbox URLs as the main app."""
    app = Flask(__name__)
    app.json.sort_keys = False
    app.register_blueprint(create_sandbox_blueprint(state), url_prefix="/sandbox")
    return app
