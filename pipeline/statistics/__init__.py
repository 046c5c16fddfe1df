"""Statistics as pure functions: paired intervals, paired tests, and the verdict rule
that turns them into "use X" (used by evaluation, routing and the reports)."""
