"""Routes of the catalogue feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
