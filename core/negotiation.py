"""`?format=` for every API view: DRF's content negotiation, except that a format naming no
renderer of the view is a 400 naming `format` and the formats the view offers; DRF answers
404 "Not found.", which reads as "no such endpoint".

Its own module, imported by DRF's settings while `core.exceptions` is still loading: it
raises DRF's ValidationError, which the API's handler turns into `{detail, errors}`."""

from collections.abc import Iterable

from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer


def render_formats(renderers: Iterable[BaseRenderer]) -> list[str]:
    """The `?format=` values `renderers` answer, in order."""
    return list(dict.fromkeys(str(r.format) for r in renderers if r.format))


class FormatNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers: Iterable[BaseRenderer], format: str) -> list[BaseRenderer]:  # noqa: A002
        renderers = list(renderers)
        chosen = [renderer for renderer in renderers if renderer.format == format]
        if not chosen:
            offered = render_formats(renderers)
            message = (
                f"Choose one of: {', '.join(offered)}."
                if len(offered) > 1
                else f"This endpoint answers {offered[0]} only."
            )
            raise ValidationError({"format": [message]})
        return chosen
