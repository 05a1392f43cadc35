"""Load the example data (data/*.parquet, made by `banquet init`) into Postgres.

Creates the schema named in feature_store.yaml (offline_store.db_schema) and (re)creates the
tables `transactions` and `profiles` in it. Run it once before `banquet apply`:

    python load_data.py
"""

import pyarrow.parquet as pq

from banquet import FeatureStore
from banquet.offline.postgres import PostgresOfflineStore

if __name__ == "__main__":
    store = FeatureStore(repo_path=".")
    offline = store.offline_store
    if not isinstance(offline, PostgresOfflineStore):
        raise SystemExit("feature_store.yaml: offline_store.type must be postgres")
    for table, path in (
        ("transactions", "data/transactions.parquet"),
        ("profiles", "data/profiles"),
    ):
        rows = pq.read_table(path)
        offline.write_table(table, rows)
        print(f"loaded {rows.num_rows} rows into {offline.cfg.db_schema}.{table}")
