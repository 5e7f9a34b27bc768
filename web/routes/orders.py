"""Routes of the orders feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
