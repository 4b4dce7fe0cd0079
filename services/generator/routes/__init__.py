"""One module per resource. Each exposes ``public`` (open) and/or ``protected`` (bearer auth) routers;
the app factory decides which get the auth dependency, so no route can forget it."""
