"""Routes of the shipping feature (not built yet)."""

from web.api import RouteTable

routes = RouteTable()
