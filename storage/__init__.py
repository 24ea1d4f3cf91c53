"""The lake: Parquet tables, their schemas, the DuckDB views over them and the exports."""
