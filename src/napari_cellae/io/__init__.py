"""Reading and writing files: CellH5 screens, position mappings."""
