"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) plus the standard
gRPC health service, served from the origin process by the same registry, batcher and sessions as
HTTP. `protocol` loads the messages, `service` implements the calls, `status` maps problems to
gRPC status codes, `checks` is the seam for per-call checks, `server` runs it all."""
