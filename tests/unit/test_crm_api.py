"""The CRM's query API as the HTTP layer calls it, over SQLite and PostgreSQL: contacts
(create, search, update, soft delete, merge), tickets (filters, changes and notes with
their history), CDR lists with keyset pagination, and the validation that answers 422/404.
"""

from __future__ import annotations

from typing import Any

import pytest

from acd.adapters.store import Store
from acd.crm import CrmError, CrmService, NotFound
from tests.unit.test_crm import T0, Script, Wall, backend, crm, dump, feed, store

__all__ = ["backend", "crm", "store"]  # fixtures, imported for pytest


# --- contacts ------------------------------------------------------------------------------


async def test_contact_create_get_update_delete(crm: CrmService) -> None:
    c = await crm.create_contact(name="  Nguyễn Văn A ", phone="+84 912 345 678",
                                 email="a@example.com", notes="VIP")
    assert (c.name, c.phone, c.email, c.notes) == ("Nguyễn Văn A", "+84912345678",
                                                   "a@example.com", "VIP")
    assert await crm.get_contact(c.id) == c
    assert await crm.get_contact(str(c.id)) == c  # ids as a URL gives them

    u = await crm.update_contact(c.id, email=None, notes="VIP, prefers mornings")
    assert (u.email, u.notes, u.name) == (None, "VIP, prefers mornings", "Nguyễn Văn A")
    assert u.updated_at > c.updated_at and u.created_at == c.created_at

    await crm.delete_contact(c.id)
    with pytest.raises(NotFound):
        await crm.get_contact(c.id)
    with pytest.raises(NotFound):
        await crm.delete_contact(c.id)
    # the number is free again for a new contact
    again = await crm.create_contact(phone="+84912345678")
    assert again.id != c.id


async def test_contact_phone_is_unique_among_live_contacts(crm: CrmService) -> None:
    a = await crm.create_contact(name="A", phone="+84912345678")
    with pytest.raises(CrmError) as err:
        await crm.create_contact(name="B", phone="+84-912-345-678")
    assert err.value.field == "phone" and str(a.id) in err.value.reason
    b = await crm.create_contact(name="B", phone="+84900000000")
    with pytest.raises(CrmError) as err:
        await crm.update_contact(b.id, phone="+84912345678")
    assert err.value.field == "phone"
    assert (await crm.update_contact(a.id, phone="+84912345678")).phone == "+84912345678"


async def test_search_by_phone_and_name(crm: CrmService) -> None:
    ids = {}
    for name, phone in [("Trần Thị Bình", "+84911111111"), ("binh Le", "+84922222222"),
                        ("Alice 50%_off", "+84933333333"), (None, "+84944444444")]:
        ids[phone] = (await crm.create_contact(name=name, phone=phone)).id
    found, nxt = await crm.search_contacts(phone="+84 922 222 222")
    assert [c.id for c in found] == [ids["+84922222222"]] and nxt is None
    assert (await crm.search_contacts(phone="+84999999999"))[0] == []
    found, _ = await crm.search_contacts(q="BINH")
    assert [c.phone for c in found] == ["+84922222222"]  # accents are not folded
    found, _ = await crm.search_contacts(q="bình")
    assert [c.phone for c in found] == ["+84911111111"]
    # LIKE wildcards in the query are literal
    assert [c.phone for c in (await crm.search_contacts(q="%_"))[0]] == ["+84933333333"]
    assert (await crm.search_contacts(q="5_"))[0] == []
    found, _ = await crm.search_contacts(q="binh", phone="+84922222222")
    assert len(found) == 1
    everyone, nxt = await crm.search_contacts(limit=3)
    rest, end = await crm.search_contacts(limit=3, cursor=nxt)
    assert [c.id for c in everyone + rest] == sorted(ids.values()) and end is None


async def test_merge_moves_tickets_and_keeps_numbers_findable(crm: CrmService,
                                                              store: Store) -> None:
    sc = Script()
    await feed(crm, sc.abandoned("c1", frm="+84911111111"))
    await feed(crm, sc.abandoned("c2", t=T0 + 10, frm="+84922222222"))
    await feed(crm, sc.abandoned("c3", t=T0 + 20, frm="+84933333333"))
    a, b, c = [(await crm.get_cdr(r)).contact_id for r in ("c1", "c2", "c3")]
    await crm.update_contact(b, name="Bình", email="b@example.com")
    await crm.merge_contacts(c, [b])  # b into c, then c into a: chains are flattened
    target = await crm.merge_contacts(a, [c])
    assert (target.name, target.email, target.phone) == ("Bình", "b@example.com",
                                                         "+84911111111")
    assert (await crm.get_contact(b)).merged_into == a
    assert (await crm.get_contact(c)).merged_into == a
    tickets, _ = await crm.list_tickets(contact=a)
    assert [t.call_ref for t in tickets] == ["c3", "c2", "c1"]
    assert {r["contact_id"] for r in (await dump(store))["cdrs"]} == {a}
    # searching or calling from a merged number lands on the contact kept
    assert [x.id for x in (await crm.search_contacts(phone="+84922222222"))[0]] == [a]
    await feed(crm, sc.abandoned("c4", t=T0 + 30, frm="+84933333333"))
    assert (await crm.get_cdr("c4")).contact_id == a
    # merged contacts cannot be merged or edited again
    with pytest.raises(CrmError) as err:
        await crm.merge_contacts(a, [b])
    assert err.value.field == "sources[0]"
    with pytest.raises(CrmError):
        await crm.update_contact(b, name="x")


@pytest.mark.parametrize(("target", "sources", "field"), [
    (1, [], "sources"), (1, "2", "sources"), (1, [1], "sources[0]"), (1, [2, 2], "sources[1]"),
    (1, [99], "sources[0]"), (1, ["x"], "sources[0]"), (1, [2, True], "sources[1]")])
async def test_merge_refusals(crm: CrmService, store: Store, target: int, sources: Any,
                              field: str) -> None:
    await crm.create_contact(name="one")
    await crm.create_contact(name="two")
    before = await dump(store)
    with pytest.raises(CrmError) as err:
        await crm.merge_contacts(target, sources)
    assert err.value.field == field
    assert await dump(store) == before


async def test_merge_into_missing_target_is_404(crm: CrmService) -> None:
    a = await crm.create_contact(name="one")
    with pytest.raises(NotFound):
        await crm.merge_contacts(999, [a.id])


@pytest.mark.parametrize(("kwargs", "field"), [
    ({}, "name"), ({"name": "   "}, "name"), ({"phone": "anonymous"}, "phone"),
    ({"name": "x", "email": "nope"}, "email"), ({"name": "x" * 201}, "name"),
    ({"name": 5}, "name"), ({"name": "a\x00b"}, "name"), ({"phone": "12"}, "phone")])
async def test_contact_validation(crm: CrmService, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(CrmError) as err:
        await crm.create_contact(**kwargs)
    assert err.value.field == field


async def test_contact_not_found_and_bad_ids(crm: CrmService) -> None:
    for bad in (0, -1, "abc", "1.5", 2**63, None, True):
        with pytest.raises(NotFound):
            await crm.get_contact(bad)
    c = await crm.create_contact(name="x")
    with pytest.raises(CrmError) as err:
        await crm.update_contact(c.id)
    assert err.value.field == "(body)"
    with pytest.raises(CrmError) as err:
        await crm.update_contact(c.id, name=None)  # would leave neither name nor phone
    assert err.value.field == "name"


# --- tickets ---------------------------------------------------------------------------------


async def test_ticket_update_and_notes_write_history(store: Store) -> None:
    wall = Wall()
    crm = CrmService(store, wall=wall)
    await feed(crm, Script().abandoned("c1"))
    tid = (await crm.get_cdr("c1")).ticket_id
    t = await crm.update_ticket(tid, status="open", assignee="1002", priority="high",
                                author="sup")
    assert (t.status, t.assignee, t.priority) == ("open", "1002", "high")
    same = await crm.update_ticket(tid, status="open", author="sup")  # no change, no entry
    assert same == t
    note = await crm.add_note(tid, "  called back, no answer  ", author="1002")
    assert (note.kind, note.data, note.author) == ("note", {"text": "called back, no answer"},
                                                   "1002")
    await crm.update_ticket(tid, assignee=None, status="solved", author="1002")
    detail = await crm.get_ticket(tid)
    people = [(e.kind, e.data, e.author) for e in detail.events if e.author is not None]
    assert people == [
        ("status", {"old": "new", "new": "open"}, "sup"),
        ("assignee", {"old": None, "new": "1002"}, "sup"),
        ("priority", {"old": "normal", "new": "high"}, "sup"),
        ("note", {"text": "called back, no answer"}, "1002"),
        ("status", {"old": "open", "new": "solved"}, "1002"),
        ("assignee", {"old": "1002", "new": None}, "1002")]
    assert detail.ticket.updated_at == detail.events[-1].at
    # a late redelivery of the call does not undo what people did
    await feed(crm, Script().abandoned("c1"))
    assert (await crm.get_ticket(tid)).ticket == detail.ticket


async def test_call_does_not_override_a_persons_assignment(crm: CrmService) -> None:
    sc = Script()
    evs = sc.queue_call("c1")
    await feed(crm, evs[:6])  # up to queue.entered: ticket exists, nobody answered yet
    tid = (await crm.get_cdr("c1")).ticket_id
    await crm.update_ticket(tid, assignee="supervisor", author="supervisor")
    await feed(crm, evs[6:])
    detail = await crm.get_ticket(tid)
    assert detail.ticket.assignee == "supervisor"
    assert [e.kind for e in detail.events].count("assignee") == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"status": "done"}, "status"), ({"priority": "p1"}, "priority"), ({}, "(body)"),
    ({"status": None}, "status"), ({"assignee": 7}, "assignee"),
    ({"status": "open", "author": "x" * 201}, "author")])
async def test_ticket_update_validation(crm: CrmService, store: Store, kwargs: dict[str, Any],
                                        field: str) -> None:
    await feed(crm, Script().abandoned("c1"))
    tid = (await crm.get_cdr("c1")).ticket_id
    before = await dump(store)
    with pytest.raises(CrmError) as err:
        await crm.update_ticket(tid, **kwargs)
    assert err.value.field == field
    assert await dump(store) == before


async def test_ticket_not_found(crm: CrmService) -> None:
    with pytest.raises(NotFound):
        await crm.get_ticket(1)
    with pytest.raises(NotFound):
        await crm.update_ticket(1, status="open")
    with pytest.raises(NotFound):
        await crm.add_note(1, "x")
    await feed(crm, Script().abandoned("c1"))
    tid = (await crm.get_cdr("c1")).ticket_id
    with pytest.raises(CrmError) as err:
        await crm.add_note(tid, "   ")
    assert err.value.field == "text"


async def test_ticket_filters(crm: CrmService) -> None:
    sc = Script()
    await feed(crm, sc.queue_call("a", frm="+84911111111"))
    await feed(crm, sc.abandoned("b", t=T0 + 10, frm="+84922222222"))
    await feed(crm, sc.out_of_hours("c", t=T0 + 20, frm="+84911111111"))
    ids = {r: (await crm.get_cdr(r)).ticket_id for r in "abc"}
    await crm.update_ticket(ids["c"], status="pending")

    async def refs(**kw: Any) -> list[str | None]:
        return [t.call_ref for t in (await crm.list_tickets(**kw))[0]]

    assert await refs() == ["c", "b", "a"]
    assert await refs(status="new") == ["b", "a"]
    assert await refs(status="pending,solved") == ["c"]
    assert await refs(status=["new", "pending"]) == ["c", "b", "a"]
    assert await refs(assignee="1002") == ["a"]
    assert await refs(assignee="-") == ["c", "b"]
    assert await refs(missed=True) == ["c", "b"]
    assert await refs(missed="0") == ["a"]
    assert await refs(queue="sales") == ["b", "a"]
    assert await refs(hotline="19001000", missed=True, status="new") == ["b"]
    contact = (await crm.get_cdr("a")).contact_id
    assert await refs(contact=contact) == ["c", "a"]
    assert await refs(contact=str(contact), status="closed") == []
    for kw, field in [({"status": "nope"}, "status"), ({"missed": "maybe"}, "missed"),
                      ({"contact": "x"}, "contact"), ({"limit": 0}, "limit"),
                      ({"cursor": "garbage!"}, "cursor")]:
        with pytest.raises(CrmError) as err:
            await crm.list_tickets(**kw)
        assert err.value.field == field


# --- CDR lists -----------------------------------------------------------------------------


async def test_cdr_keyset_pages_are_stable_while_calls_arrive(crm: CrmService) -> None:
    sc = Script()
    # 25 calls, some starting at the same instant: the call ref breaks the tie
    for i in range(25):
        await feed(crm, sc.abandoned(f"c{i:02d}", t=T0 + (i // 3)))
    seen: list[str] = []
    page, cursor = await crm.list_cdrs(limit=10)
    seen += [c.call_ref for c in page]
    # newer calls arrive while someone pages: later pages neither shift nor repeat
    for i in range(25, 30):
        await feed(crm, sc.abandoned(f"c{i:02d}", t=T0 + 100 + i))
    while cursor is not None:
        page, cursor = await crm.list_cdrs(limit="10", cursor=cursor)
        seen += [c.call_ref for c in page]
    expected = sorted((f"c{i:02d}" for i in range(25)), key=lambda r: (int(r[1:]) // 3, r),
                      reverse=True)
    assert seen == expected
    everything, _ = await crm.list_cdrs(limit=500)
    assert len(everything) == 30


async def test_cdr_filters(crm: CrmService) -> None:
    sc = Script()
    await feed(crm, sc.queue_call("a"))
    await feed(crm, sc.abandoned("b", t=T0 + 100))
    await feed(crm, sc.outbound("c", "+84987654321", t=T0 + 200))
    await feed(crm, [sc.started("live", T0 + 300)])  # still up: not listed

    async def refs(**kw: Any) -> list[str]:
        return [c.call_ref for c in (await crm.list_cdrs(**kw))[0]]

    assert await refs() == ["c", "b", "a"]
    assert await refs(since=T0 + 100) == ["c", "b"]
    assert await refs(until=str(T0 + 100)) == ["a"]
    assert await refs(since=T0, until=T0 + 150) == ["b", "a"]
    assert await refs(direction="outbound") == ["c"]
    assert await refs(outcome="abandoned") == ["b"]
    assert await refs(outcome="answered,abandoned", direction="inbound") == ["b", "a"]
    assert await refs(agent="1002") == ["a"]
    assert await refs(queue="sales", hotline="19001000") == ["b", "a"]
    assert (await crm.get_cdr("live")).outcome is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": True}, "limit"), ({"since": "yesterday"}, "since"), ({"until": "nan"}, "until"),
    ({"since": -1}, "since"), ({"since": 10, "until": 5}, "until"),
    ({"direction": "sideways"}, "direction"), ({"outcome": "won"}, "outcome"),
    ({"outcome": "answered,"}, "outcome"), ({"cursor": "e30"}, "cursor"),
    ({"cursor": "WzEsMl0"}, "cursor"), ({"hotline": "x" * 201}, "hotline")])
async def test_cdr_list_validation(crm: CrmService, kwargs: dict[str, Any],
                                   field: str) -> None:
    with pytest.raises(CrmError) as err:
        await crm.list_cdrs(**kwargs)
    assert err.value.field == field


async def test_recording_and_cdr_not_found(crm: CrmService) -> None:
    for bad in (1, "1", "x", 0):
        with pytest.raises(NotFound):
            await crm.get_recording(bad)
    for ref in ("nope", "", 5):
        with pytest.raises(NotFound):
            await crm.get_cdr(ref)
