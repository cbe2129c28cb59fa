"""Running test code beside the test: in a thread with a database session of its own."""

import threading

from portal.extensions import db


def in_own_session(app, fn) -> tuple[threading.Thread, dict]:
    """A thread (not started) that runs fn(session) in its own app context, so with its own
    database session, and the dict it fills: "value" (what fn returned) or "error" (what it
    raised, handed back to the test; the session rolled back)."""
    result = {}

    def run():
        with app.app_context():
            try:
                result["value"] = fn(db.session)
            except Exception as e:  # handed back to the test
                db.session.rollback()
                result["error"] = e
            finally:
                db.session.remove()

    return threading.Thread(target=run), result
