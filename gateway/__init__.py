"""facegate: InsightFace's face models served by Triton, with a REST gateway in front."""

__version__ = "0.1.0"
