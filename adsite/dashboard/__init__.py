"""The staff dashboard: live serving health, the model registry, ads, visitors and data quality."""
