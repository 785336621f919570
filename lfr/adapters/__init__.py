"""Adapters: the outside world (gRPC, FAISS, SQL, insightface, OpenCV, Prometheus, HTTP) behind the ports."""
