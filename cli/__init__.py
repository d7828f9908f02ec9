"""The `retrieval` command line: typer commands that call plain functions."""
