"""The one deploy path — bucket, least-privilege roles, function packages, state machine — used
unchanged against moto, LocalStack and AWS."""
