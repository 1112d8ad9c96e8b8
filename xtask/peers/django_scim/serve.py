"""Serves the django-scim2 test server with waitress on one loopback port.

    python serve.py --port PORT --db FILE [--service-provider-config FILE]
                    [--user-adapter enterprise|stock] [--threads N]

The bearer token is read from the environment variable KEYWARD_DJANGO_SCIM_TOKEN (never from
the command line, which other users of the machine can see). The database is created (Django
migrations) when the file does not exist yet. One line per request goes to stderr once the
answer is sent, in the common log format that werkzeug also writes:

    127.0.0.1 - - [28/Nov/2026 22:57:44] "GET /v2/Users?count=50 HTTP/1.1" 200 1234
"""

import argparse
import os
import secrets
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--service-provider-config")
    p.add_argument("--user-adapter", choices=["enterprise", "stock"], default="enterprise")
    p.add_argument("--threads", type=int, default=8)
    a = p.parse_args()
    if not os.environ.get("KEYWARD_DJANGO_SCIM_TOKEN"):
        sys.exit("KEYWARD_DJANGO_SCIM_TOKEN is not set")

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    os.environ["DJANGO_SETTINGS_MODULE"] = "keyward_scim.settings"
    os.environ["KEYWARD_DJANGO_DB"] = os.path.abspath(a.db)
    os.environ["KEYWARD_DJANGO_NETLOC"] = f"{a.host}:{a.port}"
    os.environ["KEYWARD_DJANGO_USER_ADAPTER"] = a.user_adapter
    os.environ.setdefault("KEYWARD_DJANGO_SECRET_KEY", secrets.token_hex(32))
    if a.service_provider_config:
        os.environ["KEYWARD_DJANGO_SPC"] = os.path.abspath(a.service_provider_config)

    import django

    django.setup()
    if not os.path.exists(a.db):
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)

    from django.core.wsgi import get_wsgi_application
    from waitress import serve

    serve(log_requests(get_wsgi_application()), host=a.host, port=a.port, threads=a.threads, ident="django-scim2")


def log_requests(app):
    def logged(environ, start_response):
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = status.split(" ", 1)[0]
            seen["length"] = next((v for k, v in headers if k.lower() == "content-length"), "-")
            return start_response(status, headers, exc_info)

        body = app(environ, start)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()
            # As sent (waitress keeps the raw path), so that no decoded space splits the line.
            target = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
            stamp = time.strftime("%d/%b/%Y %H:%M:%S")
            sys.stderr.write(
                f'{environ.get("REMOTE_ADDR", "-")} - - [{stamp}] "{environ["REQUEST_METHOD"]} {target} '
                f'{environ.get("SERVER_PROTOCOL", "HTTP/1.1")}" {seen.get("status", "-")} {seen.get("length", "-")}\n'
            )
            sys.stderr.flush()

    return logged


if __name__ == "__main__":
    main()
