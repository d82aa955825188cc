"""Find Coursebox users the bridge has not met: the account's courses, their learners and administrators.

Coursebox looks nobody up by email. What its documented API shows are the courses (findCourses), each
course's learners (allLearners) and administrators (getUserForMentio). A scan reads them course by course,
teaching the identity map every (email, id) pair it sees, and stops as soon as the email sought shows up.
A complete scan is remembered for a while, so a burst of unknown emails costs one scan, not one each;
scans of one connection run one at a time. An account that no course lists stays unknown: only a person
can link it (`bridge lms link`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bridge.lms.base import find_value
from bridge.lms.identity import normal
from bridge.lms.store import locked

MAX_COURSES = 200  # courses one lookup inside a job reads at most; `bridge lms sync` reads them all
FRESH_FOR = 300.0  # seconds a complete scan is trusted: an email it did not find is not looked for again
SCAN_LOCK_TTL = 120.0  # a scan longer than this may overlap the next one, which is harmless


@dataclass
class ScanReport:
    """What one scan read and learned."""

    total_courses: int = 0
    courses: int = 0  # courses read
    seen: int = 0  # (email, id) pairs in the lists read
    new: int = 0
    changed: int = 0  # emails whose remembered id the LMS contradicted
    dropped: int = 0  # emails whose id the LMS now shows under another email
    complete: bool = False
    found: str | None = None  # the id of the email sought, when it showed up
    skipped_fresh: bool = False  # no scan: a complete one was recent enough
    learned: dict[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """Describe the scan for the command line and logs."""
        return {key: value for key, value in self.__dict__.items() if key != "learned"}


Progress = Callable[[int, int, Mapping, int], None]  # (course number, course count, course, pairs in it)


class Directory:
    """The users one Coursebox connection can show, read into its identity map."""

    def __init__(self, connector, max_courses: int = MAX_COURSES, fresh_for: float = FRESH_FOR, clock=time.time):
        self.connector, self.max_courses, self.fresh_for, self.clock = connector, max_courses, fresh_for, clock
        self.identities = connector.identities
        self.scanned_key = f"{self.identities.key}:scanned"

    def find(self, email: str) -> str | None:
        """Return the id of an email: remembered, else from a scan unless a recent complete scan missed it."""
        known = self.identities.get(email)
        if known is not None:
            return known
        return self.scan(wanted=email).found

    def scan(self, wanted: str | None = None, progress: Progress | None = None, max_courses: int | None = None,
             force: bool = False) -> ScanReport:
        """Read the courses' learners and administrators into the identity map, stopping at `wanted` if given."""
        store = self.connector.store
        with locked(store, f"{self.identities.key}:scan:lock", SCAN_LOCK_TTL):
            if wanted is not None:
                known = self.identities.get(wanted)  # a scan that held the lock before us may have found it
                if known is not None:
                    return ScanReport(found=known)
                if not force and store.get(self.scanned_key):
                    return ScanReport(skipped_fresh=True)
            return self._scan(wanted, progress, self.max_courses if max_courses is None else max_courses)

    def _scan(self, wanted: str | None, progress: Progress | None, limit: int | None) -> ScanReport:
        courses = self.connector.courses_for_scan()
        report = ScanReport(total_courses=len(courses))
        wanted = normal(wanted) if wanted is not None else None
        for number, course in enumerate(courses[:limit] if limit else courses, start=1):
            course_id = find_value(course, ("id", "_id"))
            if course_id is None:
                continue
            pairs = self.connector.course_people(course_id)
            self._learn(pairs, report)
            report.courses = number
            if progress:
                progress(number, len(courses), course, len(pairs))
            if wanted is not None and wanted in report.learned:
                report.found = report.learned[wanted]
                return report
        report.complete = report.courses >= len(courses)
        if report.complete:
            report.dropped = self._drop_contradicted(report.learned)
            self.connector.store.set(self.scanned_key, str(self.clock()), self.fresh_for)
        return report

    def _learn(self, pairs: Iterable[tuple[str, str]], report: ScanReport) -> None:
        """Remember pairs, counting those that were new and those that replace a contradicted id."""
        fresh = {}
        for email, user_id in pairs:
            email, user_id = normal(email), str(user_id)
            report.seen += 1
            if report.learned.get(email) == user_id:
                continue
            report.learned[email] = user_id
            before = self.identities.get(email)
            if before != user_id:
                report.new += before is None
                report.changed += before is not None
                fresh[email] = user_id
        self.identities.remember_all(fresh.items())

    def _drop_contradicted(self, learned: dict[str, str]) -> int:
        """Forget emails remembered for an id that the LMS now lists under another email."""
        owner = {user_id: email for email, user_id in learned.items()}
        dropped = 0
        for email, user_id in self.identities.all().items():
            if owner.get(user_id) not in (None, email):
                self.identities.forget(email)
                dropped += 1
        return dropped

    def forget_scan(self) -> None:
        """Make the next lookup scan again (after a link or a contradiction)."""
        self.connector.store.delete(self.scanned_key)
