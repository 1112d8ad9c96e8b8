"""Settings of the django-scim2 test server. Everything that varies per run comes from the
environment that ``serve.py`` sets before Django starts: the database file, the address the
server answers on (for ``meta.location``), the bearer token, and the user adapter."""

import os

SECRET_KEY = os.environ["KEYWARD_DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "keyward_scim.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
APPEND_SLASH = False

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_scim",
    "directory",
]

MIDDLEWARE = [
    # Content-Length on every answer (waitress would otherwise send HTTP/1.1 bodies chunked).
    "django.middleware.common.CommonMiddleware",
    "keyward_scim.auth.BearerTokenMiddleware",
    "django_scim.middleware.SCIMAuthCheckMiddleware",
]

AUTH_USER_MODEL = "directory.User"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["KEYWARD_DJANGO_DB"],
        # The default (deferred) transactions fail with "database is locked" when several
        # requests write at once; IMMEDIATE takes the write lock up front and waits for it.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
    }
}

_ADAPTERS = {
    "enterprise": "directory.adapters.EnterpriseUser",
    "stock": "django_scim.adapters.SCIMUser",
}

SCIM_SERVICE_PROVIDER = {
    "NETLOC": os.environ["KEYWARD_DJANGO_NETLOC"],
    "SCHEME": "http",
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token",
        }
    ],
    "USER_ADAPTER": _ADAPTERS[os.environ.get("KEYWARD_DJANGO_USER_ADAPTER", "enterprise")],
    "GROUP_MODEL": "directory.models.Group",
    "SERVICE_PROVIDER_CONFIG_MODEL": "keyward_scim.config.ServiceProviderConfig",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_scim": {"handlers": ["stderr"], "level": "WARNING"},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
