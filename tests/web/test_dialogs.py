"""Confirmation dialogs (macros/dialog.html): open when they are the whole page, closed in a
fragment (the page's script opens it as a modal). A history restore (the back button after
htmx's cache missed) is the whole page: it used to arrive closed, as if it were a fragment."""

import pytest

from tests.conftest import HX
from tests.web.conftest import sign_in_as

CANCEL = '<dialog class="confirm" aria-labelledby="cancel-agency-h" '


@pytest.mark.parametrize("headers, open_", [
    ({}, True),
    ({**HX, "HX-Boosted": "true"}, True),
    ({**HX, "HX-History-Restore-Request": "true"}, True),
    (HX, False),
])
def test_the_dialog_is_open_unless_it_is_a_fragment(client, w, headers, open_):
    sign_in_as(client, w.avery)
    response = client.get(f"/accounts/{w.agency.id}/parent/cancel", headers=headers)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert (CANCEL + ("open>" if open_ else ">")) in html
    assert ("<html" in html) is open_
