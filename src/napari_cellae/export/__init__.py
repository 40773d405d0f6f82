"""Files and pictures for other programs: CellCognition Explorer ``.hdf``, plots."""
