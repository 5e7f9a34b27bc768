"""Routes of the cart feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
