"""The edge batch contract: the JSON models, the Parquet bulk form, frames and the batch's rules."""
