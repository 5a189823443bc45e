"""Helpers shared by the tests (imported as ``from support.X import ...``; tests/conftest.py puts tests/ on
sys.path): paths, model exporters, fixtures of runners and boards, and the model-family zoos.
tests/conftest.py keeps only pytest fixtures and hooks."""
