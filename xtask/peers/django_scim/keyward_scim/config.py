"""django-scim2's ServiceProviderConfig, with the parts a test may change read from the JSON
file named by KEYWARD_DJANGO_SPC (as scim2-server's ``--service-provider-config``). Only what
the server really does may be announced: a smaller ``filter.maxResults``, or ``patch`` off so
that a client writes with PUT; never Bulk, ETags or sort, which django-scim2 does not have."""

import json
import os

from django_scim.models import SCIMServiceProviderConfig

_ALLOWED = {"patch", "filter"}


def _overrides():
    path = os.environ.get("KEYWARD_DJANGO_SPC")
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    unknown = set(doc) - _ALLOWED
    if unknown:
        raise ValueError(f"django-scim2 cannot announce {sorted(unknown)}: only {sorted(_ALLOWED)} may change")
    return doc


class ServiceProviderConfig(SCIMServiceProviderConfig):
    overrides = _overrides()

    def to_dict(self):
        d = super().to_dict()
        for key, value in self.overrides.items():
            d[key] = {**d[key], **value}
        return d
