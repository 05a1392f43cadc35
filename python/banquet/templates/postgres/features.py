"""Feature definitions: `banquet apply` registers everything defined here.

The tables come from `python load_data.py` (in the schema named in feature_store.yaml).
"""

from datetime import timedelta

from banquet import Entity, FeatureService, FeatureView, Field, PostgreSQLSource, PushSource
from banquet.types import Float32, Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], description="A customer")

transactions_source = PostgreSQLSource(
    name="transactions",
    query="SELECT user_id, event_timestamp, created, transaction_count, avg_spend "
    "FROM transactions",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

user_transactions = FeatureView(
    name="user_transactions",
    entities=[user],
    ttl=timedelta(days=2),
    schema=[
        Field(name="transaction_count", dtype=Int64),
        Field(name="avg_spend", dtype=Float32),
    ],
    source=transactions_source,
    tags={"team": "payments"},
)

profile_push = PushSource(
    name="profile_push",  # offline pushes append rows to the profiles table
    batch_source=PostgreSQLSource(
        name="profiles", table="profiles", timestamp_field="event_timestamp"
    ),
)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="credit_score", dtype=Float64),
        Field(name="segment", dtype=String),
    ],
    source=profile_push,
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[user_transactions, user_profile[["age", "credit_score"]]],
)
