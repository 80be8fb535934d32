"""The in-server pipeline: Triton's `faces` model (Python backend, BLS to detector and recognizer).

Runs inside Triton's Python-backend interpreter, so it imports only gateway.processing,
gateway.defaults and gateway.triton.spec (numpy, OpenCV, Pillow): no FastAPI, no tritonclient.
"""
