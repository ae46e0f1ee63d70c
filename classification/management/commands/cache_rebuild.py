"""manage.py cache_rebuild: repopulate the classification cache from the database (the source of truth)."""

from django.core.management.base import BaseCommand, CommandError

from classification.cache import CacheUnavailable, cache_rebuild


class Command(BaseCommand):
    help = "Rewrite every picture's classification cache entry from the database."

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=500)

    def handle(self, *args, chunk_size=500, **options):
        try:
            count = cache_rebuild(chunk_size=chunk_size, stdout=self.stdout if options["verbosity"] > 1 else None)
        except CacheUnavailable as exc:
            raise CommandError(f"cache unavailable: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"{count} cache entries rebuilt"))
