"""Build, export and import the ONNX models the origin serves (build-time only: needs the
`convert` extra, i.e. torch, onnx, scikit-learn, skl2onnx)."""
