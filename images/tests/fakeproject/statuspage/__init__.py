"""A stand-in for Status-Page's Django project, for testing the images' platform layer.

It translates the configuration module the way Status-Page's settings.py does (DATABASE, REDIS tasks
and caching, ...) with a minimal set of apps, so the tests need no Status-Page source.
"""
