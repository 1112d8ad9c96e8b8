"""Bearer-token authentication for the SCIM endpoints: a request whose ``Authorization``
header carries the token of this run is made by the provisioning client; any other request
is anonymous, and django-scim2's own middleware answers it 401."""

import hmac
import os

from django.contrib.auth.models import AnonymousUser


class ProvisioningClient:
    """The one caller the token stands for."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    username = "provisioning-client"


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.token = os.environ["KEYWARD_DJANGO_SCIM_TOKEN"].encode()

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self.token):
            request.user = ProvisioningClient()
        else:
            request.user = AnonymousUser()
        return self.get_response(request)
