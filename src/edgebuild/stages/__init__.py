"""The stages of one target's build, each a small module the pipeline calls in order.

`context` holds what every stage shares (the build-wide inputs and one target's
working state); `train`, `compile`, `measure` and `emit` are the stages whose work
is more than a single library call.
"""
