"""An end-to-end run on this repo: a training set from history, then online features.

Run it with `python example.py` after `banquet apply`.
"""

from datetime import datetime, timedelta, timezone

import pandas as pd

from banquet import FeatureStore

if __name__ == "__main__":
    store = FeatureStore(repo_path=".")
    now = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

    entity_df = pd.DataFrame(
        {
            "user_id": [1001, 1002, 1003, 1001],
            "event_timestamp": [now - timedelta(days=d) for d in (1, 2, 3, 7)],
        }
    )
    training = store.get_historical_features(
        entity_df=entity_df,
        features=store.get_feature_service("fraud_model_v1"),
    ).to_df()
    print("Training set:")
    print(training.to_string(index=False))

    # Entity rows can also be a query that Postgres runs.
    from_sql = store.get_historical_features(
        entity_df="SELECT user_id, event_timestamp FROM transactions "
        "ORDER BY event_timestamp DESC LIMIT 5",
        features=["user_transactions:avg_spend", "user_profile:segment"],
    ).to_df()
    print("Training set from SQL entity rows:")
    print(from_sql.to_string(index=False))

    store.materialize(now - timedelta(days=14), now)
    online = store.get_online_features(
        features=[
            "user_transactions:transaction_count",
            "user_transactions:avg_spend",
            "user_profile:segment",
        ],
        entity_rows=[{"user_id": 1001}, {"user_id": 1002}, {"user_id": 9999}],
    ).to_dict()
    print("Online features:")
    for name, values in online.items():
        print(f"  {name}: {values}")
