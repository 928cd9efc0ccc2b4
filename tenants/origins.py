"""The web origins an ingestion key allows browsers to send from: how an admin's list is
checked and stored (the CORS rules themselves are core.cors and telemetry.cors)."""

from core.cors import OriginInvalid, origin_normalise
from core.exceptions import DomainError

MAX_ALLOWED_ORIGINS = 20


def api_key_origins_clean(origins: object) -> list[str]:
    """The allowed origins of a key as stored: each one normalised (core.cors), duplicates
    dropped, in the order given. A DomainError on `allowed_origins` lists every bad entry."""
    if origins is None:
        return []
    if not isinstance(origins, list | tuple):
        raise DomainError(
            "allowed_origins must be a list of origins.", errors={"allowed_origins": ["Expected a list of origins."]}
        )
    cleaned, problems = [], []
    for value in origins:
        try:
            origin = origin_normalise(value)
        except OriginInvalid as exc:
            problems.append(str(exc))
            continue
        if origin not in cleaned:
            cleaned.append(origin)
    if not problems and len(cleaned) > MAX_ALLOWED_ORIGINS:
        problems.append(f"A key lists at most {MAX_ALLOWED_ORIGINS} origins; use one key per group of sites.")
    if problems:
        raise DomainError(f"allowed_origins: {problems[0]}", errors={"allowed_origins": problems})
    return cleaned
