"""Routes of the refunds feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
