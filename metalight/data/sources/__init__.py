"""One module per dataset: each maps the dataset's native schema to records."""
