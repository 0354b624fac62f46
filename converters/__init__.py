"""Conversion and optimization passes (installed as `edgebuild.converters`).

Each pass takes a traced model and profile section and returns a new model or
a `.tflite` flatbuffer. Only the pipeline calls them.
"""
