"""A view that touches the database, as Status-Page's home page does."""

from django.db import connection
from django.http import HttpRequest, HttpResponse


def home(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_content_type")
        (count,) = cursor.fetchone()
    return HttpResponse(f"content types: {count}\n", content_type="text/plain")


def slow(request: HttpRequest) -> HttpResponse:
    """Answer after two seconds (to test that SIGTERM drains in-flight requests)."""
    import time

    time.sleep(2)
    return HttpResponse("slow done\n", content_type="text/plain")
