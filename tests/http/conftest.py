"""Served-app tests (functions-framework's WSGI app, ``simrec serve`` over real HTTP, the
OpenAPI fuzz). They build their models in-test; the shared fixtures are in
tests/conftest.py and the similarity folders in tests/builders.py."""
