"""Generated protobuf and gRPC code for the lfr.v1 API (from proto/lfr/v1/*.proto at build time)."""
