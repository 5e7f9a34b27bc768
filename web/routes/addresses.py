"""Routes of the addresses feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
