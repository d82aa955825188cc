"""What the Coursebox guide says and leaves out: defaults, documented attributes, actions, the connection schema."""

from __future__ import annotations

import re
from urllib.parse import quote

from bridge.lms.base import ActionSpec, connection_schema
from bridge.lms.tokens import FIRST_BACKOFF, MAX_BACKOFF

# Everything the public API guide leaves out lives here, so a wrong guess is fixed in one place.
DEFAULTS = {
    # Assumption: the guide gives paths only, never the host.
    "url": "https://api.coursebox.ai",
    # Seconds a login token is reused; the guide advises short-lived tokens and states no lifetime.
    # A shorter `ttl` in the login reply (LoopBack sends one) wins.
    "token_ttl": 3600,
    # The guide says the login reply carries the token "in token:id parameter".
    "token_fields": ("token.id", "id"),
    "token_ttl_fields": ("token.ttl", "ttl"),
    # Assumption: LoopBack's login reply names the user it logged in; used only to find an account whose
    # createAccount reply was lost, and the account is checked by its email before it is used.
    "login_user_fields": ("token.userId", "userId", "user.id", "token.user.id"),
    # Assumption: reply shapes of createAccount, WineUsers/<id> and the lists are undocumented.
    "user_id_fields": ("id", "user.id", "data.id", "data.user.id"),
    "email_fields": ("email", "user.email", "data.email", "data.user.email"),
    # A learner list item may be an enrolment that names its user: its own `id` would be the enrolment's.
    "learner_id_fields": ("userId", "user.id", "id"),
    "list_fields": ("", "data", "rows", "items", "learners", "users", "courses"),
    # The guide's example sends marketingEmails true; we never opt people in on their behalf.
    "marketing_emails": False,
    "is_18_plus": True,
    # The guide's only example of findCourses.
    "page_options": {"my": True},
}

# The attributes updateMainAttributes documents, minus `id` (named by user_id) and `email` (which names
# the user in a rule, as in enroll; the guide's `newEmail` is the one to set).
ATTRIBUTES = (
    "realm emailVerified fullName firstName lastName title contactNumber dateOfBirth headline avatarUrl "
    "profile country city location region state zipCode status rate rateAdditionalTax price currency "
    "additionalTax isDiscountCodeUsed calendlyLink personalSite companySite linkedIn twitter facebookLink "
    "instagramLink facebookId googleId linkedinId appleId customerId stripeId isDeleted isPlatformUpdates "
    "isAdmin isExpertRequested isExpertApproved organisationCode isVIPRequested isVIPApproved "
    "isChannelPublished isCoursePublished newEmail isSideBarVisible isTopBarVisible channelsPageTabs "
    "peoplePageTabs elibraryPageTabs resourcesPageTabs lastActiveAt isInActive isTrial inIframe referer "
    "username credentials challenges created lastUpdated createdAt updatedAt isUserAdmin isVIP isBoxer isPro "
    "isApprovedExpert isExpert isLearner isFollowed"
).split()


def snake(name: str) -> str:
    """Spell a camelCase attribute the way rule fields are spelt: isVIPApproved -> is_vip_approved."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


UPDATE_FIELDS = {snake(name): name for name in ATTRIBUTES}  # rule field -> documented attribute
REMOVE_MODES = ("unenroll", "deactivate", "delete")
IF_UNKNOWN = ("skip", "needs-attention")  # what remove_user does for a person the bridge cannot find
CREATING_TTL = 86400  # seconds the bridge remembers sending createAccount, for a rerun after a lost reply
USER = (("user_id", "email"),)

ACTIONS = {
    "create_user": ActionSpec(required=("email",), optional=("first_name", "last_name", "password")),
    "get_user": ActionSpec(optional=USER[0], any_of=USER),
    "update_user": ActionSpec(optional=(*USER[0], *UPDATE_FIELDS), any_of=(*USER, tuple(UPDATE_FIELDS))),
    "invite": ActionSpec(required=("course_id", "email"), optional=("first_name", "last_name", "title", "body")),
    "enroll": ActionSpec(required=("course_id",), optional=USER[0], any_of=USER),
    "unenroll": ActionSpec(required=("course_id",), optional=USER[0], any_of=USER),
    "remove_user": ActionSpec(required=("mode",), optional=(*USER[0], "course_ids", "if_unknown"), any_of=USER,
                              choices=(("mode", REMOVE_MODES), ("if_unknown", IF_UNKNOWN))),
    "list_courses": ActionSpec(optional=("page_options",)),
    "get_course": ActionSpec(required=("course_id",)),
    "get_activity": ActionSpec(required=("activity_id",)),
    "course_learners": ActionSpec(required=("course_id",)),
    "course_admins": ActionSpec(required=("course_id",)),
}

SCHEMA = connection_schema(
    "coursebox",
    {
        "email": {"type": "string", "minLength": 1},
        "password": {"type": "string", "minLength": 1},
        "token_ttl": {"type": "number", "exclusiveMinimum": 0},
        "login_backoff": {"type": "object", "additionalProperties": False,
                          "description": "seconds without a login after a failed one (doubling with each failure, "
                                         f"up to max; defaults {FIRST_BACKOFF:g} and {MAX_BACKOFF:g})",
                          "properties": {"first": {"type": "number", "exclusiveMinimum": 0},
                                         "max": {"type": "number", "exclusiveMinimum": 0}}},
    },
    required=("email", "password"),
)


def as_number(value):
    """Send an all-digit id as a number, as the guide's unquoted <courseid>/<userid> show."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def segment(value) -> str:
    """Quote an id for use as one URL path segment."""
    return quote(str(value), safe="")


def id_list(value) -> list[str]:
    """Read course ids given as a list, a number, or text separated by commas or spaces."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[\s,]+", str(value))
    return [str(item).strip() for item in items if str(item).strip()]
