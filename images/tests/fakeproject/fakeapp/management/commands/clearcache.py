"""Status-Page's clearcache, as far as the release step needs it: clear the Redis cache."""

from django.core.cache import cache
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Clear the cache"

    def handle(self, *args: object, **options: object) -> None:
        cache.clear()
        self.stdout.write("cache cleared")
