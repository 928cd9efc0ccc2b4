"""Read side of telemetry for the apps above it: an organisation's features by the
references people and SDKs use for them."""

from core.query_params import parse_id
from tenants.models import Organization

from .models import Feature


def feature_find(org: Organization, ref: object, *, by_key: bool = True) -> Feature | None:
    """The feature of `org` whose id is `ref` (an int or ASCII digits), else, with `by_key`,
    whose key is `ref` (a key may be digits too: "2024" is a key before it is an unknown id),
    else the one feature whose name is `ref` whatever its case (what a person types into a
    filter box; two features of that name are no match). None when nothing matches; another
    organisation's feature is never found."""
    features = Feature.objects.filter(organization=org)
    pk = parse_id(ref)
    feature = features.filter(pk=pk).first() if pk is not None else None
    if feature is None and by_key and ref is not None:
        feature = features.filter(key=str(ref)).first()
        if feature is None:
            named = list(features.filter(name__iexact=str(ref))[:2])
            feature = named[0] if len(named) == 1 else None
    return feature
