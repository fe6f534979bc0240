"""Demo and test data made by code: DNG files, sample shoots, sample releases."""
