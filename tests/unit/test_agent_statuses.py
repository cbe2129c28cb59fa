"""The agent statuses service: built-in then custom statuses in order, adding (name, color,
limit), editing, moving, deleting (its users back to Online) and each member's own status."""

import pytest
from sqlalchemy import select

from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import AgentStatus, Membership, Role
from portal.services import agents
from tests import factories as f


@pytest.fixture
def w(session):
    admin = f.user(session, name="Ann Admin")
    agent = f.user(session, name="Al Agent")
    solo = f.standalone(session, "Solo Shop", admin=admin)
    f.member(session, agent, solo, Role.USER)
    other = f.standalone(session, "Other Shop", admin=admin)
    session.commit()
    return admin, agent, solo, other


def names(session, account):
    return [s.name for s in agents.list_statuses(session, account)]


def membership(session, user, account) -> Membership:
    session.expire_all()
    return session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                   Membership.account_id == account.id))


def test_built_in_statuses_come_first_then_custom_ones_in_order(session, w):
    _, _, solo, _ = w
    agents.add(session, solo, "Lunch", "#F59E0B", "on")
    agents.add(session, solo, "Training", "#1e88e5")
    assert [(c.key, c.name, c.color, c.available, c.builtin)
            for c in agents.choices(session, solo)] == [
        ("online", "Online", "#2e7d32", True, True),
        ("away", "Away", "#b26a00", False, True),
        ("offline", "Offline", "#6b7280", False, True),
        (f"custom:{agents.list_statuses(session, solo)[0].id}", "Lunch", "#f59e0b", True,
         False),
        (f"custom:{agents.list_statuses(session, solo)[1].id}", "Training", "#1e88e5", False,
         False),
    ]
    assert [s.position for s in agents.list_statuses(session, solo)] == [0, 1]


def test_a_name_is_trimmed_and_spaces_collapsed(session, w):
    _, _, solo, _ = w
    status = agents.add(session, solo, "  On   a  call ", "#123abc")
    assert (status.name, status.color, status.available) == ("On a call", "#123abc", False)


@pytest.mark.parametrize("name,color,field,message", [
    ("", "#123456", "name", "Enter the status name."),
    ("   ", "#123456", "name", "Enter the status name."),
    ("x" * 41, "#123456", "name", "The status name is at most 40 characters."),
    ("online", "#123456", "name", "There is already a status named online: choose another "
                                  "name."),
    ("OFFLINE", "#123456", "name", "There is already a status named OFFLINE: choose another "
                                   "name."),
    ("lunch", "#123456", "name", "There is already a status named lunch: choose another "
                                 "name."),
    ("Break", "red", "color", "Choose a color (#rrggbb, like #1e88e5)."),
    ("Break", "#12345", "color", "Choose a color (#rrggbb, like #1e88e5)."),
    ("Break", "#1234567", "color", "Choose a color (#rrggbb, like #1e88e5)."),
    ("Break", "#12345g", "color", "Choose a color (#rrggbb, like #1e88e5)."),
    ("Break", "", "color", "Choose a color (#rrggbb, like #1e88e5)."),
])
def test_bad_statuses_are_refused_with_the_reason(session, w, name, color, field, message):
    _, _, solo, _ = w
    agents.add(session, solo, "Lunch", "#f59e0b")
    with pytest.raises(ValidationFailed) as e:
        agents.add(session, solo, name, color)
    assert e.value.errors == {field: message}
    assert names(session, solo) == ["Lunch"]


def test_forty_characters_is_allowed_and_both_errors_are_given_at_once(session, w):
    _, _, solo, _ = w
    assert agents.add(session, solo, "x" * 40, "#000000").name == "x" * 40
    with pytest.raises(ValidationFailed) as e:
        agents.add(session, solo, "", "blue")
    assert set(e.value.errors) == {"name", "color"}


def test_names_are_unique_per_account_only(session, w):
    _, _, solo, other = w
    agents.add(session, solo, "Lunch", "#f59e0b")
    assert agents.add(session, other, "LUNCH", "#f59e0b").name == "LUNCH"


def test_at_most_fifty_custom_statuses(session, w):
    _, _, solo, _ = w
    for i in range(agents.MAX_CUSTOM_STATUSES):
        agents.add(session, solo, f"Status {i}", "#000000")
    with pytest.raises(ValidationFailed) as e:
        agents.add(session, solo, "One too many", "#000000")
    assert e.value.errors == {"": "An account can have at most 50 custom statuses. Delete one "
                                  "before adding another."}
    assert len(names(session, solo)) == 50


def test_update_keeps_its_own_name_and_refuses_a_taken_one(session, w):
    _, _, solo, _ = w
    lunch = agents.add(session, solo, "Lunch", "#f59e0b")
    agents.add(session, solo, "Training", "#1e88e5")
    agents.update(session, solo, lunch.id, "LUNCH", "#AABBCC", "on")
    assert (lunch.name, lunch.color, lunch.available) == ("LUNCH", "#aabbcc", True)
    with pytest.raises(ValidationFailed) as e:
        agents.update(session, solo, lunch.id, "training", "#aabbcc")
    assert e.value.errors == {"name": "There is already a status named training: choose "
                                      "another name."}


def test_another_accounts_status_is_not_found(session, w):
    _, _, solo, other = w
    theirs = agents.add(session, other, "Theirs", "#000000")
    for action in (lambda: agents.get(session, solo, theirs.id),
                   lambda: agents.update(session, solo, theirs.id, "Mine", "#000000"),
                   lambda: agents.delete(session, solo, theirs.id),
                   lambda: agents.move(session, solo, theirs.id, "up")):
        with pytest.raises(NotFound):
            action()
    assert session.get(AgentStatus, theirs.id).name == "Theirs"


def test_move_up_and_down_swaps_with_the_neighbour(session, w):
    _, _, solo, _ = w
    a, b, c = (agents.add(session, solo, n, "#000000") for n in ("A", "B", "C"))
    agents.move(session, solo, c.id, "up")
    assert names(session, solo) == ["A", "C", "B"]
    agents.move(session, solo, c.id, "up")
    assert names(session, solo) == ["C", "A", "B"]
    agents.move(session, solo, a.id, "down")
    assert names(session, solo) == ["C", "B", "A"]
    with pytest.raises(ValidationFailed) as e:
        agents.move(session, solo, c.id, "up")
    assert e.value.errors == {"": "C is already the first custom status."}
    with pytest.raises(ValidationFailed) as e:
        agents.move(session, solo, a.id, "down")
    assert e.value.errors == {"": "A is already the last custom status."}
    with pytest.raises(ValidationFailed) as e:
        agents.move(session, solo, b.id, "sideways")
    assert e.value.errors == {"": "Move a status up or down."}
    assert names(session, solo) == ["C", "B", "A"]


def test_move_after_a_delete_and_with_equal_positions(session, w):
    _, _, solo, _ = w
    a, b, c = (agents.add(session, solo, n, "#000000") for n in ("A", "B", "C"))
    agents.delete(session, solo, b.id)
    agents.move(session, solo, c.id, "up")  # positions 0 and 2: swapped
    assert names(session, solo) == ["C", "A"]
    d = agents.add(session, solo, "D", "#000000")
    assert d.position == 3  # after the last one
    a.position = d.position  # two at the same place (say, added at the same moment)
    session.flush()
    agents.move(session, solo, d.id, "up")
    assert names(session, solo) == ["C", "D", "A"]
    assert [s.position for s in agents.list_statuses(session, solo)] == [0, 1, 2]


def test_set_current_accepts_built_in_keys_and_the_accounts_own_statuses(session, w):
    _, agent, solo, _ = w
    assert membership(session, agent, solo).agent_status == "online"
    assert agents.set_current(session, agent, solo, "away").name == "Away"
    assert membership(session, agent, solo).agent_status == "away"
    lunch = agents.add(session, solo, "Lunch", "#f59e0b")
    choice = agents.set_current(session, agent, solo, f"custom:{lunch.id}")
    assert (choice.key, choice.name, choice.color) == (f"custom:{lunch.id}", "Lunch", "#f59e0b")
    assert membership(session, agent, solo).agent_status == f"custom:{lunch.id}"
    header = agents.for_header(session, agent, solo)
    assert header.current.name == "Lunch"
    assert [c.name for c in header.choices] == ["Online", "Away", "Offline", "Lunch"]


@pytest.mark.parametrize("value", ["", "busy", "Online", "custom:", "custom:abc", "custom:0",
                                   "custom:-1", "custom:99999999999", " custom:1x"])
def test_set_current_refuses_anything_else(session, w, value):
    _, agent, solo, _ = w
    with pytest.raises(ValidationFailed) as e:
        agents.set_current(session, agent, solo, value)
    assert e.value.errors == {"status": "Choose one of this account's statuses."}
    assert membership(session, agent, solo).agent_status == "online"


def test_set_current_refuses_another_accounts_custom_status(session, w):
    admin, _, solo, other = w
    theirs = agents.add(session, other, "Theirs", "#000000")
    with pytest.raises(ValidationFailed) as e:
        agents.set_current(session, admin, solo, f"custom:{theirs.id}")
    assert e.value.errors == {"status": "Choose one of this account's statuses."}
    assert membership(session, admin, solo).agent_status == "online"


def test_set_current_needs_a_membership_on_the_account(session):
    owner = f.user(session)
    agency = f.agency(session, owner=owner)
    sub = f.sub(session, agency)
    with pytest.raises(NotAllowed) as e:
        agents.set_current(session, owner, sub, "away")
    assert e.value.message == "Set your status on an account you are a member of."
    header = agents.for_header(session, owner, sub)
    assert (header.member, header.current) == (False, None)
    assert [c.key for c in header.choices] == ["online", "away", "offline"]


def test_deleting_a_status_moves_its_users_back_to_online(session, w):
    admin, agent, solo, other = w
    lunch = agents.add(session, solo, "Lunch", "#f59e0b")
    training = agents.add(session, solo, "Training", "#1e88e5")
    agents.set_current(session, agent, solo, f"custom:{lunch.id}")
    agents.set_current(session, admin, solo, f"custom:{lunch.id}")
    agents.set_current(session, admin, other, "away")
    third = f.user(session)
    f.member(session, third, solo)
    agents.set_current(session, third, solo, f"custom:{training.id}")
    assert agents.users_on(session, lunch) == 2
    assert agents.delete(session, solo, lunch.id) == 2
    assert names(session, solo) == ["Training"]
    assert membership(session, agent, solo).agent_status == "online"
    assert membership(session, admin, solo).agent_status == "online"
    assert membership(session, admin, other).agent_status == "away"
    assert membership(session, third, solo).agent_status == f"custom:{training.id}"


def test_a_stale_current_status_shows_as_online(session, w):
    _, agent, solo, _ = w
    m = membership(session, agent, solo)
    m.agent_status = "custom:123456"  # a status that no longer exists
    session.flush()
    assert agents.for_header(session, agent, solo).current.key == "online"
