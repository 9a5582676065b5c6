# The configuration module of Celery's "First steps", with the broker from $CELERY_BROKER_URL.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "Europe/Oslo"
enable_utc = True
task_annotations = {"tasks.add": {"rate_limit": "100/m"}}
broker_connection_retry_on_startup = True
