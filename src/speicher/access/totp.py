"""A second factor for web logins: time-based one-time codes (TOTP, RFC 6238: 6 digits, 30
seconds, SHA-1, what every authenticator app speaks) and ten one-time recovery codes.

- The secret must be known to check a code, so it is sealed (Fernet, the key in the
  root-only state directory, as S3 secrets are), never shown again after enrolment.
- Enrolment is two steps: ``begin`` makes a secret (shown once, as a QR code and as text),
  ``confirm`` turns it on when the app's first code is right and gives the recovery codes
  (shown once; only their Argon2 hashes are kept).
- ``verify`` takes a code of the current 30 seconds or the one before or after (clocks
  drift), never one of a step already used (a code seen over a shoulder is spent), or an
  unused recovery code (then spent). Throttling wrong codes is the caller's: the web login
  counts them in the password throttle.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp
from sqlalchemy import delete, select

from speicher.access import passwords
from speicher.access.s3keys import Sealer
from speicher.db import Database
from speicher.db.models import RecoveryCode, TotpSecret, User
from speicher.errors import Conflict, InvalidInput, NotFound
from speicher.events import EventService

ISSUER = "Speicher"
RECOVERY_CODES = 10
STEP = 30  # seconds
WINDOW = 1  # steps before and after the current one that still count


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for typing into an app
    uri: str  # otpauth://, for the QR code


def _code(text: str) -> str:
    return "".join(c for c in text if c.isalnum()).lower()


class TotpService:
    def __init__(self, state_dir: Path, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events
        self.sealer = Sealer(state_dir)

    def _user(self, name: str) -> User:
        with self.db.session() as s:
            user = s.scalars(select(User).where(User.name == name)).first()
            if user is None:
                raise NotFound(f"no user named '{name}'")
            s.expunge(user)
            return user

    def enabled(self, name: str) -> bool:
        user = self._user(name)
        with self.db.session() as s:
            row = s.get(TotpSecret, user.id)
            return row is not None and row.confirmed

    def begin(self, name: str) -> Enrolment:
        """A new secret for ``name`` (not in use until confirmed; a second factor already in
        use stays so until then)."""
        user = self._user(name)
        secret = pyotp.random_base32()
        with self.db.session() as s:
            row = s.get(TotpSecret, user.id)
            if row is not None and row.confirmed:
                raise Conflict("a second factor is in use; turn it off first", field="code")
            if row is None:
                row = TotpSecret(user_id=user.id, secret_sealed="", confirmed=False, last_step=0)
                s.add(row)
            row.secret_sealed = self.sealer.seal(secret)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.name, issuer_name=ISSUER)
        return Enrolment(secret, uri)

    def confirm(self, name: str, code: str, now: float | None = None) -> list[str]:
        """Turn the second factor on with the app's first code; the recovery codes."""
        user = self._user(name)
        with self.db.session() as s:
            row = s.get(TotpSecret, user.id)
            if row is None or row.confirmed:
                raise Conflict("start the enrolment again", field="code")
            step = self._step_of(row, code, now)
            if step is None:
                raise InvalidInput(field="code", reason="that code is not the app's current one")
            row.confirmed, row.last_step = True, step
        codes = self._new_recovery_codes(user.id)
        self.events.record("info", "user.totp_on", name, f"two-factor login turned on for {name}")
        return codes

    def disable(self, name: str) -> None:
        user = self._user(name)
        with self.db.session() as s:
            s.execute(delete(TotpSecret).where(TotpSecret.user_id == user.id))
            s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        self.events.record(
            "warning", "user.totp_off", name, f"two-factor login turned off for {name}"
        )

    def verify(self, name: str, code: str, now: float | None = None) -> bool:
        """Whether ``code`` is a right code of ``name``'s app (not one used before) or an
        unused recovery code; either is spent by this."""
        user = self._user(name)
        with self.db.session() as s:
            row = s.get(TotpSecret, user.id)
            if row is None or not row.confirmed:
                return False
            step = self._step_of(row, code, now)
            if step is not None and step > row.last_step:
                row.last_step = step
                return True
        return self._spend_recovery_code(user.id, name, code)

    def recovery_codes_left(self, name: str) -> int:
        user = self._user(name)
        with self.db.session() as s:
            rows = s.scalars(
                select(RecoveryCode).where(
                    RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
                )
            )
            return len(list(rows))

    # -- inside -----------------------------------------------------------------------------

    def _step_of(self, row: TotpSecret, code: str, now: float | None) -> int | None:
        """The time step whose code ``code`` is (within the window), or None."""
        digits = _code(code)
        secret = self.sealer.open(row.secret_sealed)
        if secret is None or len(digits) != 6 or not digits.isdigit():
            return None
        totp = pyotp.TOTP(secret, interval=STEP)
        moment = time.time() if now is None else now
        current = int(moment // STEP)
        for step in range(current - WINDOW, current + WINDOW + 1):
            if secrets.compare_digest(totp.at(step * STEP), digits):
                return step
        return None

    def _new_recovery_codes(self, user_id: int) -> list[str]:
        codes = ["-".join(secrets.token_hex(3) for _ in range(3)) for _ in range(RECOVERY_CODES)]
        hashes = [passwords.hash_password(_code(c)) for c in codes]
        with self.db.session() as s:
            s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            s.add_all(RecoveryCode(user_id=user_id, code_hash=h) for h in hashes)
        return codes

    def _spend_recovery_code(self, user_id: int, name: str, code: str) -> bool:
        wanted = _code(code)
        if len(wanted) != 18:
            return False
        with self.db.session() as s:
            unused = list(
                s.scalars(
                    select(RecoveryCode).where(
                        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                    )
                )
            )
            for row in unused:
                if passwords.verify(row.code_hash, wanted):
                    row.used_at = dt.datetime.now(dt.UTC)
                    break
            else:
                return False
        self.events.record(
            "warning", "user.recovery_code", name, f"{name} logged in with a recovery code"
        )
        return True
