"""Email: every message the portal sends is rendered, queued in the outbox table, and
delivered by the jobs over SMTP when a server is configured (the dev outbox page shows the
outbox otherwise).

    notices.py   what is sent and to whom: receipts, refunds, declines, statements, a
                 transferred account's new owner, the billing links' request and its notes
    compose.py   rendering a message from templates (the renderer create_app gives the
                 package: nothing here imports Flask) and queuing it
    outbox.py    the outbox: queue (once per dedupe key), latest (the dev outbox page)
    delivery.py  SMTP delivery: claims, retries with backoff, failed mail, `flask mail retry`
"""
