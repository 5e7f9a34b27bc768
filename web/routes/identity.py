"""Routes of the identity feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
