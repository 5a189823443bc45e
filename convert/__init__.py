"""wherry converter (host side): Paddle models to bundles of .nb and .onnx artifacts."""
