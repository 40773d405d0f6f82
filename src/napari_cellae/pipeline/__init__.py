"""The steps of a run in order, shared by the ``cellae`` command and the napari widget (no Qt)."""
