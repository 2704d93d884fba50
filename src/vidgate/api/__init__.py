"""The HTTP and WebSocket surface (API.md): app factory, routes, schemas, errors."""
