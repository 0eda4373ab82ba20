"""One-time grant state: authorization codes, device codes and refresh tokens (stored hashed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update

from cielo.store import db
from cielo.store.models import AuthCode, DeviceCode, RefreshToken


class GrantRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ----------------------------------------------------------------- authorization codes
    def add_auth_code(self, code: AuthCode) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(db.auth_codes).values(**code.__dict__))

    def redeem_auth_code(self, code_hash: str) -> tuple[AuthCode | None, bool]:
        """Mark the code redeemed. Returns (code, first_time); first_time is False on replay."""
        t = db.auth_codes
        with self._engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.code_hash == code_hash)).first()
            if row is None:
                return None, False
            changed = conn.execute(
                update(t).where(and_(t.c.code_hash == code_hash, t.c.redeemed.is_(False))).values(redeemed=True)
            ).rowcount
        return AuthCode(**{k: getattr(row, k) for k in AuthCode.__dataclass_fields__}), changed == 1

    def set_auth_code_family(self, code_hash: str, family_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(db.auth_codes).where(db.auth_codes.c.code_hash == code_hash).values(
                family_id=family_id))

    # ----------------------------------------------------------------- device codes
    def add_device_code(self, code: DeviceCode) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(db.device_codes).values(**code.__dict__))

    def _device(self, condition: Any) -> DeviceCode | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(db.device_codes).where(condition)).first()
        return DeviceCode(**{k: getattr(row, k) for k in DeviceCode.__dataclass_fields__}) if row else None

    def get_device_code(self, device_code_hash: str) -> DeviceCode | None:
        return self._device(db.device_codes.c.device_code_hash == device_code_hash)

    def find_user_code(self, user_code: str) -> DeviceCode | None:
        return self._device(db.device_codes.c.user_code == user_code)

    def decide_device_code(self, user_code: str, status: str, user_id: str | None) -> bool:
        t = db.device_codes
        with self._engine.begin() as conn:
            changed = conn.execute(
                update(t)
                .where(and_(t.c.user_code == user_code, t.c.status == "pending"))
                .values(status=status, user_id=user_id)
            ).rowcount
        return changed == 1

    def touch_device_poll(self, device_code_hash: str, now: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(db.device_codes).where(
                db.device_codes.c.device_code_hash == device_code_hash).values(last_poll=now))

    def consume_device_code(self, device_code_hash: str) -> bool:
        """Approved codes are redeemed once; returns False when another poll got there first."""
        t = db.device_codes
        with self._engine.begin() as conn:
            changed = conn.execute(
                update(t)
                .where(and_(t.c.device_code_hash == device_code_hash, t.c.status == "approved"))
                .values(status="redeemed")
            ).rowcount
        return changed == 1

    # ----------------------------------------------------------------- refresh tokens
    def add_refresh_token(self, token: RefreshToken) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(db.refresh_tokens).values(**token.__dict__))

    def redeem_refresh_token(self, token_hash: str) -> tuple[RefreshToken | None, bool]:
        """Mark the token redeemed. Returns (token, first_time); on replay the caller revokes the family.

        One conditional UPDATE, so of any number of workers or replicas presenting the same token at once exactly
        one redeems it. A token whose family holds a revoked token is not redeemed either: a replay may revoke the
        family while the first redemption's new token is still being stored (not yet there to be revoked); that
        token then fails here, and its own presentation revokes the family again."""
        t = db.refresh_tokens
        sibling = t.alias("sibling")
        family_revoked = select(sibling.c.token_hash).where(
            sibling.c.family_id == t.c.family_id, sibling.c.revoked.is_(True)).exists()
        with self._engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.token_hash == token_hash)).first()
            if row is None:
                return None, False
            changed = conn.execute(
                update(t)
                .where(and_(t.c.token_hash == token_hash, t.c.redeemed.is_(False), t.c.revoked.is_(False),
                            ~family_revoked))
                .values(redeemed=True)
            ).rowcount
        token = RefreshToken(**{k: getattr(row, k) for k in RefreshToken.__dataclass_fields__})
        return token, changed == 1

    def revoke_family(self, family_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(db.refresh_tokens).where(
                db.refresh_tokens.c.family_id == family_id).values(revoked=True))

    def revoke_user(self, user_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(db.refresh_tokens).where(
                db.refresh_tokens.c.user_id == user_id).values(revoked=True))

    def purge_expired(self, now: float, keep_s: float = 86400.0) -> int:
        """Delete codes and refresh tokens that expired more than `keep_s` ago; returns how many went.
        Kept that long so a late or replayed one still gets its precise answer (expired, already
        redeemed: AADSTS70008, 70019, 54005, 700082) rather than "not valid"."""
        cutoff = now - keep_s
        deleted = 0
        with self._engine.begin() as conn:
            for table in (db.auth_codes, db.device_codes, db.refresh_tokens):
                deleted += conn.execute(delete(table).where(table.c.expires_at < cutoff)).rowcount
        return deleted
