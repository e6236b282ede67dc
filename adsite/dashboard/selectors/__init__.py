"""Reads behind the dashboard pages, one module per page (``overview``, ``models``, ``visitors``,
``quality``, ``audit``, ``ads``) over the shared snapshot windows (``windows``). Every read is bounded
(a limit, or a time window on an index) and goes through the apps' public faces (``tracking.api``,
``inference.api``, the ads selectors); the views only render what these return.
"""
