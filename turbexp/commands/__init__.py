"""The views behind the commands that are not the pipeline itself: ``compare`` (runs side by
side), ``predict`` (a model on observed maps), ``quiz`` and its web page, and the cost of
``run --dry-run``. They read what the machinery made (runs, models, caches); the machinery
never imports them (an import-linter contract says so)."""
