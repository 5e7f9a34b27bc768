"""Routes of the payments feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
