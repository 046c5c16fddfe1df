"""Routing learnt from the ledger: calibrate self-route's threshold, fit a router,
and score routing policies on held-out questions (``lcrag route fit``)."""
