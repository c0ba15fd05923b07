"""VisionFlow: Lightning-native computer-vision pipelines that run locally or on Ray."""

__version__ = "0.1.0"
