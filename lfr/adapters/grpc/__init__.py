"""The gRPC edge of the matcher: thin servicers over the services, one auth and error-mapping layer."""
