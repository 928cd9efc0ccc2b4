"""Two libraries every process loads import optional packages only because they are installed,
for features this project does not use. `optional_extras_hide()` imports them first with those
packages hidden, which keeps ~25 MB out of each web worker (docs/benchmarks.md, "Memory";
docs/decisions.md, "Lean processes").

A module in `sys.modules` as None makes `import` raise ModuleNotFoundError: the libraries'
own `try: import … except ImportError` fallbacks then apply, exactly as if the package were
not installed. The hiding lasts only while the library itself is imported, so anything else
(google-genai needs `cryptography`, the schemathesis run `requests`) imports them as usual.
`usage_platform/tests/test_lean_imports.py` fails if a library upgrade brings them back.
"""

import importlib
import sys

OPTIONAL_EXTRAS = {
    # Django REST framework's compat module: serializer fields for django.contrib.postgres's
    # ArrayField/HStoreField (importing them loads psycopg, ~10 MB, even on SQLite; no model
    # here has such a field), `RequestsClient` (requests, ~5 MB; a test client nobody uses)
    # and the browsable API's Markdown rendering (markdown, pygments; only JSON is rendered).
    "rest_framework.compat": ("django.contrib.postgres.fields", "requests", "markdown", "pygments"),
    # PyJWT: the RSA, EC and EdDSA algorithms (cryptography, ~10 MB). The tokens are HS256
    # (SIMPLE_JWT's default), an HMAC from the standard library.
    "jwt": ("cryptography",),
}


def optional_extras_hide() -> None:
    """Import each library of OPTIONAL_EXTRAS with its extras hidden. Does nothing for a
    library already imported, and hides no extra that is already loaded."""
    for library, extras in OPTIONAL_EXTRAS.items():
        if library in sys.modules:
            continue
        hidden = [name for name in extras if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            importlib.import_module(library)
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
