"""The web as a target: a bundle's ONNX artifacts run by onnxruntime-web in a real, headless browser.

* ``ortweb``    - the pinned onnxruntime-web package, fetched from the npm registry on first use (cached)
* ``browser``   - the system Chromium, driven headless
* ``server``    - the 127.0.0.1 page server (COOP/COEP headers) the page fetches its job from and posts to
* ``session``   - one browser run: models + inputs in, outputs, timings and the browser's facts out
* ``preflight`` - which of a model's ops the chosen execution provider runs
"""
