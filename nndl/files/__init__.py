"""Files nndl writes and reads: every write goes through ``nndl.files.atomic``."""
