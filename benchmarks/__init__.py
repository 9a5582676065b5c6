"""Benchmarks of celeriac against its peers, run side by side: ``python -m benchmarks --help``.

Layout: ``common.py`` holds what every suite shares (worker subprocesses, process-tree memory,
statistics, the table); one ``<broker>_suite.py`` per broker; ``apps/`` the task modules each
peer's worker imports. ``__main__.py`` keeps the registry of suites.
"""
