"""Vets' and data scientists' questions: DuckDB views, cohort queries, the SQL sandbox, Parquet
export, fleets.
"""
