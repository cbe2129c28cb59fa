"""Running test code beside the test: in a thread with a database session of its own."""

import threading
import traceback

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


def at_once(n: int, work) -> list:
    """Run work(i) for i in 0..n-1 on n threads released together (a barrier), so the calls
    race; return what they returned (in the order they finished) and fail the test with the
    tracebacks of any that raised."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results.append(work(i))
        except Exception:  # surfaced below
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [], "\n".join(errors)
    return results
