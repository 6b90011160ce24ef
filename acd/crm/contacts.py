"""Contacts for the HTTP layer: create, read, change, soft-delete, search by number or name,
and merge duplicates (their tickets and call records move to the one kept).

Phone numbers are stored normalized (see ``links.normalize_phone``) and are unique among
live contacts; a merged contact keeps its number, so calls from it still find the contact
it was merged into.  Deleting only stamps ``deleted_at``: tickets keep pointing at it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acd.adapters.store.schema import cdrs, contacts, tickets

from . import validate as v
from .errors import CrmError, NotFound
from .links import LIVE, find_contact, normalize_phone
from .model import Contact, from_row

MAX_MERGE = 100
_LIKE_ESCAPE = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


class Contacts:
    def __init__(self, engine: AsyncEngine, write_engine: AsyncEngine,
                 wall: Callable[[], float], normalize: Any = None) -> None:
        self.engine = engine
        self.write_engine = write_engine
        self.wall = wall
        self.normalize = normalize

    def _phone(self, value: Any) -> str | None:
        raw = v.text("phone", value, 40)
        if raw is None:
            return None
        phone = normalize_phone(raw, self.normalize)
        if phone is None:
            raise CrmError("phone", "not a phone number")
        return phone

    async def create(self, *, name: Any = None, phone: Any = None, email: Any = None,
                     notes: Any = None) -> Contact:
        values = {"name": v.text("name", name, 200), "phone": self._phone(phone),
                  "email": v.email(email), "notes": v.text("notes", notes, 10_000)}
        if values["name"] is None and values["phone"] is None:
            raise CrmError("name", "a contact needs a name or a phone number")
        now = self.wall()
        try:
            async with self.write_engine.begin() as conn:
                await self._phone_free(conn, values["phone"], None)
                row = (await conn.execute(contacts.insert().returning(*contacts.c), {
                    **values, "created_at": now, "updated_at": now})).mappings().one()
        except sa.exc.IntegrityError:
            # a call or another request took the number between the check and the insert
            raise CrmError("phone", "already the number of another contact") from None
        return from_row(Contact, row)

    async def get(self, contact_id: Any) -> Contact:
        """A contact, merged ones included (``merged_into`` says where it went)."""
        cid = v.ident("contact", contact_id)
        async with self.engine.connect() as conn:
            row = await _load(conn, cid)
        if row is None or row["deleted_at"] is not None:
            raise NotFound("contact", contact_id)
        return from_row(Contact, row)

    async def update(self, contact_id: Any, *, name: Any = v.UNSET, phone: Any = v.UNSET,
                     email: Any = v.UNSET, notes: Any = v.UNSET) -> Contact:
        """Change the fields given; None (or blank) clears one."""
        cid = v.ident("contact", contact_id)
        changes: dict[str, Any] = {}
        if name is not v.UNSET:
            changes["name"] = v.text("name", name, 200)
        if phone is not v.UNSET:
            changes["phone"] = self._phone(phone)
        if email is not v.UNSET:
            changes["email"] = v.email(email)
        if notes is not v.UNSET:
            changes["notes"] = v.text("notes", notes, 10_000)
        if not changes:
            raise CrmError("(body)", "nothing to change")
        try:
            return await self._update(cid, contact_id, changes)
        except sa.exc.IntegrityError:
            raise CrmError("phone", "already the number of another contact") from None

    async def _update(self, cid: int, contact_id: Any, changes: dict[str, Any]) -> Contact:
        async with self.write_engine.begin() as conn:
            row = await _load(conn, cid, lock=True)
            if row is None or row["deleted_at"] is not None:
                raise NotFound("contact", contact_id)
            if row["merged_into"] is not None:
                raise CrmError("id", f"contact was merged into {row['merged_into']}")
            merged = {**row, **changes}
            if merged["name"] is None and merged["phone"] is None:
                raise CrmError("name", "a contact needs a name or a phone number")
            if "phone" in changes and changes["phone"] != row["phone"]:
                await self._phone_free(conn, changes["phone"], cid)
            out = (await conn.execute(contacts.update().where(contacts.c.id == cid).values(
                **changes, updated_at=max(self.wall(), row["updated_at"]))
                .returning(*contacts.c))).mappings().one()
        return from_row(Contact, out)

    async def delete(self, contact_id: Any) -> None:
        cid = v.ident("contact", contact_id)
        async with self.write_engine.begin() as conn:
            done = await conn.execute(contacts.update().where(
                contacts.c.id == cid, contacts.c.deleted_at.is_(None)).values(
                deleted_at=self.wall()))
            if done.rowcount != 1:
                raise NotFound("contact", contact_id)

    async def search(self, *, phone: Any = None, q: Any = None, limit: Any = None,
                     cursor: Any = None) -> tuple[list[Contact], str | None]:
        """Live contacts by number (a merged contact's number finds the one it went into)
        and/or by a case-insensitive part of the name; by id, oldest first."""
        c = contacts.c
        n = v.limit(limit)
        key = v.decode_cursor(cursor, (int,))
        conds: list[Any] = [LIVE]
        async with self.engine.connect() as conn:
            if phone is not None and phone != "":
                number = self._phone(phone)
                assert number is not None
                found = await find_contact(conn, number)
                if found is None:
                    return [], None
                conds.append(c.id == found)
            name = v.text("q", q, 200)
            if name is not None:
                pattern = "%" + name.lower().translate(_LIKE_ESCAPE) + "%"
                conds.append(sa.func.lower(c.name).like(pattern, escape="\\"))
            if key is not None:
                conds.append(c.id > key[0])
            rows = list((await conn.execute(
                sa.select(contacts).where(*conds).order_by(c.id).limit(n + 1))).mappings())
        items = [from_row(Contact, r) for r in rows[:n]]
        return items, (v.encode_cursor(items[-1].id) if len(rows) > n else None)

    async def merge(self, target: Any, sources: Any) -> Contact:
        """Fold ``sources`` into ``target``: their tickets and call records move to it,
        its empty fields take theirs, and each is marked merged into it."""
        tid = v.ident("contact", target)
        if not isinstance(sources, Sequence) or isinstance(sources, str) or not sources:
            raise CrmError("sources", "must be a non-empty list of contact ids")
        if len(sources) > MAX_MERGE:
            raise CrmError("sources", f"at most {MAX_MERGE} contacts at once")
        ids: list[int] = []
        for i, s in enumerate(sources):
            sid = v.ref_id(f"sources[{i}]", s)
            if sid == tid:
                raise CrmError(f"sources[{i}]", "is the target itself")
            if sid in ids:
                raise CrmError(f"sources[{i}]", "listed twice")
            ids.append(sid)
        now = self.wall()
        async with self.write_engine.begin() as conn:
            # Locked in id order: two merges over the same contacts cannot deadlock.
            rows = {r["id"]: r for r in await _load_many(conn, sorted([tid, *ids]))}
            t = rows.get(tid)
            if t is None or t["deleted_at"] is not None:
                raise NotFound("contact", target)
            if t["merged_into"] is not None:
                raise CrmError("target", f"contact was merged into {t['merged_into']}")
            for i, sid in enumerate(ids):
                s = rows.get(sid)
                if s is None or s["deleted_at"] is not None:
                    raise CrmError(f"sources[{i}]", "no such contact")
                if s["merged_into"] is not None:
                    raise CrmError(f"sources[{i}]",
                                   f"contact was merged into {s['merged_into']}")
            c = contacts.c
            await conn.execute(tickets.update().where(tickets.c.contact_id.in_(ids))
                               .values(contact_id=tid, updated_at=now))
            await conn.execute(cdrs.update().where(cdrs.c.contact_id.in_(ids))
                               .values(contact_id=tid))
            await conn.execute(contacts.update().where(c.merged_into.in_(ids))
                               .values(merged_into=tid))
            await conn.execute(contacts.update().where(c.id.in_(ids))
                               .values(merged_into=tid, updated_at=now))
            fill = {}
            for col in ("name", "phone", "email", "notes"):
                if t[col] is None:
                    fill[col] = next((rows[s][col] for s in ids if rows[s][col]), None)
            out = (await conn.execute(contacts.update().where(c.id == tid).values(
                **fill, updated_at=max(now, t["updated_at"])).returning(*contacts.c))
                ).mappings().one()
        return from_row(Contact, out)

    async def _phone_free(self, conn: AsyncConnection, phone: str | None,
                          own: int | None) -> None:
        if phone is None:
            return
        c = contacts.c
        other = (await conn.execute(sa.select(c.id).where(c.phone == phone, LIVE))).first()
        if other is not None and other.id != own:
            raise CrmError("phone", f"already the number of contact {other.id}")


async def _load(conn: AsyncConnection, cid: int, lock: bool = False) -> dict[str, Any] | None:
    query = sa.select(contacts).where(contacts.c.id == cid)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def _load_many(conn: AsyncConnection, ids: list[int]) -> list[dict[str, Any]]:
    query = (sa.select(contacts).where(contacts.c.id.in_(ids)).order_by(contacts.c.id)
             .with_for_update())
    return [dict(r) for r in (await conn.execute(query)).mappings()]
