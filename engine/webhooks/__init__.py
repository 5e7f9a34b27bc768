"""Event webhooks: subscriptions (staff and `webhooks:write` keys), captured events, deliveries.

Events are captured by database triggers (migration 0015) in the transaction of the change;
`subscriptions` manages what a tenant wants, `deliveries` is the delivery loop a worker runs
(the HTTP POST itself is a port the worker supplies: the engine never imports an HTTP client),
and `targets` checks a target URL and its resolved addresses (SSRF).
"""
