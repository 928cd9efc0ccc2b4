"""Login throttling, the same on every login path (the API, the pages' form, the Django admin).

Two limits count failed attempts (never successful ones) over a sliding window on the
shared cache (`core.rate_limit`):
- per account, the e-mail tried whether or not it is registered (LOGIN_ACCOUNT_FAILURES per
  LOGIN_ACCOUNT_WINDOW_SECONDS, 10 per 15 minutes): guessing one password from many addresses;
- per client address (`core.client_address`, an IPv6 /64; LOGIN_ADDRESS_FAILURES per
  LOGIN_ADDRESS_WINDOW_SECONDS, 30 per 5 minutes): one address trying many accounts.
While a limit is reached every attempt is refused before the password is checked, the right
one included, so throttled guesses cost no password hash and tell nothing.

An attacker could keep an account's limit reached for as long as they keep failing. So a
successful login remembers its address for that account (KNOWN_ADDRESS_DAYS), and from a
remembered address the account limit counts only that address's failures: the owner still
gets in from where they usually log in while someone elsewhere hammers their account.

Redis down: nothing is counted and nothing refused (logged once); see `rate_limit`.
"""

import math
import time

from django.conf import settings
from django.utils.crypto import salted_hmac
from rest_framework import status

from core.client_address import address_bucket
from core.exceptions import DomainError
from core.rate_limit import counters_delete, counters_get, counters_incr, sliding_wait

KNOWN_ADDRESS_DAYS = 30
_WHAT = "login throttle off (attempts pass uncounted)"


class LoginThrottled(DomainError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, wait: int) -> None:
        self.wait = wait
        super().__init__(
            f"Too many failed log-in attempts. Try again in {wait_phrase(wait)}.",
            headers={"Retry-After": str(wait)},
        )


def wait_phrase(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _digest(*parts: str) -> str:
    # Keyed, so the cache holds no e-mail addresses and no guessable stand-in for them.
    return salted_hmac("tenants.login_throttle", "\n".join(parts)).hexdigest()[:32]


class _Window:
    """One sliding-window limit: the counter keys of the current and previous window."""

    def __init__(self, name: str, ident: str, limit: int, period: int, now: float) -> None:
        self.limit, self.period = limit, max(1, period)
        index, offset = divmod(now, self.period)
        self.elapsed = offset / self.period
        self.current = f"login:{name}:{ident}:{int(index)}"
        self.previous = f"login:{name}:{ident}:{int(index) - 1}"
        # A window's count is read until the end of the next one.
        self.ttl = 2 * self.period + 1

    def wait(self, current: int, previous: int) -> int:
        if self.limit <= 0:
            return 0
        return sliding_wait(current, previous, self.elapsed, self.limit, self.period)


def _windows(email: str, address: str) -> tuple[_Window, _Window, _Window, str]:
    """(account, account-from-this-address, address) windows and the remembered-address key."""
    email = email.strip().lower()
    bucket = address_bucket(address)
    now = time.time()
    account_args = (settings.LOGIN_ACCOUNT_FAILURES, settings.LOGIN_ACCOUNT_WINDOW_SECONDS, now)
    account = _Window("account", _digest(email), *account_args)
    pair = _Window("pair", _digest(email, bucket), *account_args)
    by_address = _Window(
        "address", _digest(bucket), settings.LOGIN_ADDRESS_FAILURES, settings.LOGIN_ADDRESS_WINDOW_SECONDS, now
    )
    return account, pair, by_address, f"login:known:{_digest(email, bucket)}"


def login_throttle_wait(*, email: str, address: str) -> int:
    """Seconds before this e-mail may be tried again from this address (0: now)."""
    account, pair, by_address, known_key = _windows(email, address)
    keys = [w.current for w in (account, pair, by_address)] + [w.previous for w in (account, pair, by_address)]
    values = counters_get([*keys, known_key], what=_WHAT)
    if values is None:
        return 0
    current, previous, known = values[0:3], values[3:6], values[6] > 0
    waits = [w.wait(c, p) for w, c, p in zip((account, pair, by_address), current, previous, strict=True)]
    account_wait, pair_wait, address_wait = waits
    return max(pair_wait if known else account_wait, address_wait)


def login_throttle_check(*, email: str, address: str) -> None:
    """Raises LoginThrottled (429 with Retry-After) while a limit is reached."""
    wait = login_throttle_wait(email=email, address=address)
    if wait:
        raise LoginThrottled(wait)


def login_failure_record(*, email: str, address: str) -> None:
    account, pair, by_address, _known = _windows(email, address)
    counters_incr([(w.current, w.ttl) for w in (account, pair, by_address)], what=_WHAT)


def login_success_record(*, email: str, address: str) -> None:
    """Clears this address's failures on the account and remembers the address for it. The
    account's total stays: a successful login of the owner must not hand an attacker
    elsewhere a fresh allowance."""
    _account, pair, _by_address, known_key = _windows(email, address)
    counters_delete([pair.current, pair.previous])
    counters_incr([(known_key, KNOWN_ADDRESS_DAYS * 86400)], what=_WHAT)
