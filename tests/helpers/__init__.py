"""Helpers the test suite shares. ``tests/conftest.py`` hands them to tests as fixtures (``media``,
``models``, ``tiny_training``); test modules never import them, nor each other."""
