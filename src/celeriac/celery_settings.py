"""Every setting name Celery 5.7 knows, and what celeriac does with it.

Written by hand from ``celery.app.defaults`` (and the few names Celery reads outside it: the
daemon options of ``celery worker/beat/events``, a few backends' extras), in the groups of
Celery's configuration guide. Each name is one of three kinds:

- ``SAME``: celeriac's setting of that name does what Celery's does (the old upper-case name is
  an alias of it);
- ``MOOT``: accepted, but celeriac's design makes it unnecessary; the worker says once, at INFO,
  what celeriac does instead;
- ``NOT_YET``: accepted, not supported yet; the worker says so once, at WARNING, naming the
  section of ``docs/migrating-from-celery.md``.

``same_value`` is a value with which Celery already behaves as celeriac does: a setting given
that value needs no note (``worker_send_task_events = True``). ``docs/migrating-from-celery.md``
shows this table to people; a test keeps the two alike.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

GUIDE = "docs/migrating-from-celery.md"


class Kind(enum.StrEnum):
    """What celeriac does with a Celery setting."""

    SAME = "same"
    MOOT = "moot"
    NOT_YET = "not yet"


ANY: Final = object()  # no value makes the setting go without a note


@dataclass(frozen=True)
class CelerySetting:
    """One Celery setting: its name, its old upper-case name, and what celeriac does."""

    name: str
    old: str | None
    kind: Kind
    note: str = ""  # MOOT, NOT_YET: what celeriac does instead; SAME: how it differs, if at all
    same_value: object = ANY
    group: str = ""

    def label(self) -> str:
        """``name (OLD_NAME)``, as the notes name it."""
        return f"{self.name} ({self.old})" if self.old else self.name

    def note_for(self, value: Any) -> Note | None:
        """What to say once about this setting given ``value`` (None: nothing to say)."""
        if self.kind is Kind.SAME or value is None:
            return None
        if self.same_value is not ANY and value == self.same_value:
            return None
        if self.kind is Kind.MOOT:
            text = f"{self.label()} is not needed in celeriac and has no effect: {self.note}"
            return Note(self.name, logging.INFO, text)
        return Note(
            self.name,
            logging.WARNING,
            f"{self.label()} is not supported yet and has no effect: {self.note} "
            f'(see "{self.group}" under Settings in {GUIDE})',
        )


class Note(NamedTuple):
    """A line the worker logs once a process about how celeriac reads the configuration."""

    key: str  # what it is about: one line per key and process
    level: int
    text: str


def setting_notes(values: Mapping[str, Any]) -> Iterator[Note]:
    """The notes for the Celery settings among ``values`` that celeriac does not use."""
    for name, value in values.items():
        row = BY_NAME.get(name)
        note = row.note_for(value) if row is not None else None
        if note is not None:
            yield note


def _same(name: str, old: str | None, note: str = "") -> CelerySetting:
    return CelerySetting(name, old, Kind.SAME, note)


def _moot(name: str, old: str | None, note: str, same_value: object = ANY) -> CelerySetting:
    return CelerySetting(name, old, Kind.MOOT, note, same_value)


def _later(name: str, old: str | None, note: str, same_value: object = ANY) -> CelerySetting:
    return CelerySetting(name, old, Kind.NOT_YET, note, same_value)


def _group(title: str, *rows: CelerySetting) -> tuple[CelerySetting, ...]:
    return tuple(dataclasses.replace(row, group=title) for row in rows)


AMQP = (
    "celeriac has no exchanges or queue declarations: a message goes to a queue by its name, "
    "and a queue exists once something is sent to it"
)
LEASES = (
    "a worker holds each message under a lease that it renews while the task runs; if the "
    "worker or its process dies, the message comes back after the lease "
    "(broker_transport_options['lease_seconds'], 30 s), at most task_max_deliveries times"
)
IN_BROKER = "countdowns, ETAs and retries wait in the broker, not in worker memory"
OUTAGE = (
    "workers and beat wait for an unreachable broker, at start-up and later, retrying with "
    "backoff for as long as it takes; a publish gives up after broker_publish_timeout (10 s)"
)
KEPT = "a worker keeps outcomes it could not store and stores them when the backend is back"
BACKENDS = "celeriac stores results in SQLite or Redis, or in the broker's own store"
REDIS_URL = "give it in the result_backend URL (redis://user:password@host:port/db)"
REDIS_OPTIONS = (
    "the Redis backend takes socket_timeout, socket_connect_timeout and health_check_interval "
    "from broker_transport_options"
)
BROKER_URL = "give the host, port, user and password in broker_url"
CHORDS = "the last member of a chord to finish starts its body, once: nothing polls or joins"
EVENTS = (
    "workers always record task events and each task's history in the result backend "
    "(task_history, task_history_expires): there is no event queue to set up"
)
EVENTS_DAEMON = (
    "`celeriac events` prints the live stream in the foreground; it has no daemon options yet"
)
CONTROL = (
    "remote control commands (revoke) go to a broadcast log in the broker, kept for a day, "
    "that every worker reads"
)
DAEMON = (
    "celeriac beat does not daemonize (the worker does, with --detach): run it under systemd, "
    "supervisord or a container, which handle log files, PID files and users"
)
CLASSES = "the worker is not assembled from classes; extend it with middleware"
LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"

# Celery's name, its old name, and what celeriac does; one row a line where it fits.
# fmt: off
TABLE: tuple[CelerySetting, ...] = (
    *_group("General settings",
        _same("accept_content", "CELERY_ACCEPT_CONTENT", "json and pickle, by name or MIME type"),
        _moot("result_accept_content", "RESULT_ACCEPT_CONTENT",
              "results are read with accept_content plus result_serializer"),
    ),
    *_group("Time and date settings",
        _moot("enable_utc", "ENABLE_UTC",
              "times are kept in UTC; crontab entries are read in timezone (UTC unless set)",
              same_value=True),
        _same("timezone", "CELERY_TIMEZONE", "also read from Django's TIME_ZONE, as Celery does"),
    ),
    *_group("Task settings",
        _same("task_annotations", "CELERY_ANNOTATIONS",
              "dicts by task name or '*', objects with annotate(task), '@method' wrappers"),
        _same("task_compression", "CELERY_MESSAGE_COMPRESSION", "zlib, gzip, bzip2 or lzma"),
        _moot("task_protocol", "CELERY_TASK_PROTOCOL",
              "celeriac has one message format of its own (one JSON header line, then the body)"),
        _same("task_serializer", "CELERY_TASK_SERIALIZER", "json, or pickle with security_key"),
        _same("task_publish_retry", "CELERY_TASK_PUBLISH_RETRY",
              "bounded by broker_publish_timeout (10 s), then PublishError"),
        _same("task_publish_retry_policy", "CELERY_TASK_PUBLISH_RETRY_POLICY",
              "without one, a publish retries with backoff until broker_publish_timeout"),
        _moot("task_repr_maxlevels", "CELERY_REPR_MAXLEVELS",
              "the worker logs a task's name, id and result as JSON, whole"),
    ),
    *_group("Task execution settings",
        _same("task_always_eager", "CELERY_ALWAYS_EAGER"),
        _same("task_eager_propagates", "CELERY_EAGER_PROPAGATES_EXCEPTIONS"),
        _same("task_store_eager_result", "CELERY_STORE_EAGER_RESULT"),
        _moot("task_remote_tracebacks", "CELERY_REMOTE_TRACEBACKS",
              "the worker's traceback is kept with a failure: AsyncResult.traceback",
              same_value=False),
        _same("task_ignore_result", "CELERY_IGNORE_RESULT"),
        _later("task_store_errors_even_if_ignored", "CELERY_STORE_ERRORS_EVEN_IF_IGNORED",
               "a task with ignore_result stores no state at all", same_value=False),
        _same("task_track_started", "CELERY_TRACK_STARTED"),
        _same("task_time_limit", "CELERYD_TASK_TIME_LIMIT"),
        _later("task_allow_error_cb_on_chord_header", "CELERY_ALLOW_ERROR_CB_ON_CHORD_HEADER",
               "a failed chord member fails the chord at once (ChordError); link_error on the "
               "chord runs once", same_value=False),
        _same("task_soft_time_limit", "CELERYD_TASK_SOFT_TIME_LIMIT"),
        _same("task_acks_late", "CELERY_ACKS_LATE", "default True (Celery: False)"),
        _later("task_acks_on_failure_or_timeout", "CELERY_ACKS_ON_FAILURE_OR_TIMEOUT",
               "a failed or timed-out task is recorded FAILURE and its message acknowledged",
               same_value=True),
        _later("task_acks_on_failure", "CELERY_ACKS_ON_FAILURE",
               "a failed task is recorded FAILURE and its message acknowledged", same_value=True),
        _later("task_acks_on_timeout", "CELERY_ACKS_ON_TIMEOUT",
               "a timed-out task is recorded FAILURE and its message acknowledged",
               same_value=True),
        _moot("task_reject_on_worker_lost", "CELERY_REJECT_ON_WORKER_LOST", LEASES),
        _moot("task_retry_on_worker_lost", "CELERY_RETRY_ON_WORKER_LOST", LEASES),
        _same("task_default_rate_limit", "CELERY_DEFAULT_RATE_LIMIT"),
    ),
    *_group("Task result backend settings",
        _same("result_backend", "CELERY_RESULT_BACKEND", "sqlite://, redis://, memory://"),
        _moot("result_backend_always_retry", "CELERY_RESULT_BACKEND_ALWAYS_RETRY", KEPT),
        _moot("result_backend_max_sleep_between_retries_ms",
              "CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS", KEPT),
        _moot("result_backend_base_sleep_between_retries_ms",
              "CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS", KEPT),
        _moot("result_backend_max_retries", "CELERY_RESULT_BACKEND_MAX_RETRIES", KEPT),
        _moot("result_backend_thread_safe", None,
              "every backend is safe to use from several threads"),
        _later("result_backend_transport_options", "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",
               "the result backend reads broker_transport_options"),
        _same("result_serializer", "CELERY_RESULT_SERIALIZER"),
        _same("result_compression", "CELERY_RESULT_COMPRESSION", "zlib, gzip, bzip2 or lzma"),
        _later("result_extended", "CELERY_RESULT_EXTENDED",
               "a result keeps the task's name and worker (AsyncResult.name, .worker), not its "
               "arguments or queue", same_value=False),
        _same("result_expires", "CELERY_TASK_RESULT_EXPIRES"),
        _later("result_failure_expires", "CELERY_RESULT_FAILURE_EXPIRES",
               "failures expire after result_expires, as successes do"),
        _moot("result_cache_max", "CELERY_MAX_CACHED_RESULTS",
              "AsyncResult reads the backend; a final state never changes once stored"),
        _moot("result_chord_join_timeout", "CELERY_RESULT_CHORD_JOIN_TIMEOUT", CHORDS),
        _moot("result_chord_retry_interval", "CELERY_RESULT_CHORD_RETRY_INTERVAL", CHORDS),
        _moot("result_chord_expires", "CELERY_RESULT_CHORD_EXPIRES",
              "a chord's state expires with its results (result_expires)"),
        _later("override_backends", None, BACKENDS),
    ),
    *_group("Database backend settings",
        _later("database_url", "CELERY_RESULT_DBURI", BACKENDS),
        _later("database_create_tables_at_setup", "DATABASE_CREATE_TABLES_AT_SETUP", BACKENDS),
        _later("database_engine_options", "CELERY_RESULT_ENGINE_OPTIONS", BACKENDS),
        _later("database_engine_callback", "DATABASE_ENGINE_CALLBACK", BACKENDS),
        _later("database_short_lived_sessions", "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS", BACKENDS),
        _later("database_table_schemas", "DATABASE_TABLE_SCHEMAS", BACKENDS),
        _later("database_table_names", "CELERY_RESULT_DB_TABLENAMES", BACKENDS),
    ),
    *_group("RPC backend settings",
        _moot("result_persistent", "CELERY_RESULT_PERSISTENT", "results are stored, never sent"),
        _moot("result_exchange", "CELERY_RESULT_EXCHANGE", AMQP),
        _moot("result_exchange_type", "CELERY_RESULT_EXCHANGE_TYPE", AMQP),
    ),
    *_group("Cache backend settings",
        _later("cache_backend", "CELERY_CACHE_BACKEND", BACKENDS),
        _later("cache_backend_options", "CELERY_CACHE_BACKEND_OPTIONS", BACKENDS),
    ),
    *_group("MongoDB backend settings",
        _later("mongodb_backend_settings", "CELERY_MONGODB_BACKEND_SETTINGS", BACKENDS),
    ),
    *_group("Redis backend settings",
        _later("redis_host", "CELERY_REDIS_HOST", REDIS_URL),
        _later("redis_port", "CELERY_REDIS_PORT", REDIS_URL),
        _later("redis_db", "CELERY_REDIS_DB", REDIS_URL),
        _later("redis_username", "CELERY_REDIS_USERNAME", REDIS_URL),
        _later("redis_password", "CELERY_REDIS_PASSWORD", REDIS_URL),
        _later("redis_backend_use_ssl", "CELERY_REDIS_BACKEND_USE_SSL",
               "use a rediss:// URL with ?ssl_ca_certs=... (certificates are checked)"),
        _later("redis_max_connections", "CELERY_REDIS_MAX_CONNECTIONS", REDIS_OPTIONS),
        _later("redis_socket_connect_timeout", "CELERY_REDIS_SOCKET_CONNECT_TIMEOUT",
               REDIS_OPTIONS),
        _later("redis_socket_timeout", "CELERY_REDIS_SOCKET_TIMEOUT", REDIS_OPTIONS),
        _later("redis_retry_on_timeout", "CELERY_REDIS_RETRY_ON_TIMEOUT", REDIS_OPTIONS),
        _later("redis_socket_keepalive", "CELERY_REDIS_SOCKET_KEEPALIVE", REDIS_OPTIONS),
        _later("redis_backend_health_check_interval", None, REDIS_OPTIONS),
    ),
    *_group("Cassandra/AstraDB backend settings",
        _later("cassandra_servers", "CASSANDRA_SERVERS", BACKENDS),
        _later("cassandra_bundle_path", "CASSANDRA_BUNDLE_PATH", BACKENDS),
        _later("cassandra_secure_bundle_path", None, BACKENDS),
        _later("cassandra_port", "CASSANDRA_PORT", BACKENDS),
        _later("cassandra_keyspace", "CASSANDRA_KEYSPACE", BACKENDS),
        _later("cassandra_table", "CASSANDRA_TABLE", BACKENDS),
        _later("cassandra_read_consistency", "CASSANDRA_READ_CONSISTENCY", BACKENDS),
        _later("cassandra_write_consistency", "CASSANDRA_WRITE_CONSISTENCY", BACKENDS),
        _later("cassandra_entry_ttl", "CASSANDRA_ENTRY_TTL", BACKENDS),
        _later("cassandra_auth_provider", "CASSANDRA_AUTH_PROVIDER", BACKENDS),
        _later("cassandra_auth_kwargs", "CASSANDRA_AUTH_KWARGS", BACKENDS),
        _later("cassandra_options", "CASSANDRA_OPTIONS", BACKENDS),
    ),
    *_group("S3 backend settings",
        _later("s3_access_key_id", "S3_ACCESS_KEY_ID", BACKENDS),
        _later("s3_secret_access_key", "S3_SECRET_ACCESS_KEY", BACKENDS),
        _later("s3_bucket", "S3_BUCKET", BACKENDS),
        _later("s3_base_path", "S3_BASE_PATH", BACKENDS),
        _later("s3_endpoint_url", "S3_ENDPOINT_URL", BACKENDS),
        _later("s3_region", "S3_REGION", BACKENDS),
    ),
    *_group("Azure Block Blob backend settings",
        _later("azureblockblob_container_name", "AZUREBLOCKBLOB_CONTAINER_NAME", BACKENDS),
        _later("azureblockblob_base_path", "AZUREBLOCKBLOB_BASE_PATH", BACKENDS),
        _later("azureblockblob_retry_initial_backoff_sec",
               "AZUREBLOCKBLOB_RETRY_INITIAL_BACKOFF_SEC",
               BACKENDS),
        _later("azureblockblob_retry_increment_base", "AZUREBLOCKBLOB_RETRY_INCREMENT_BASE",
               BACKENDS),
        _later("azureblockblob_retry_max_attempts", "AZUREBLOCKBLOB_RETRY_MAX_ATTEMPTS", BACKENDS),
        _later("azureblockblob_connection_timeout", "AZUREBLOCKBLOB_CONNECTION_TIMEOUT", BACKENDS),
        _later("azureblockblob_read_timeout", "AZUREBLOCKBLOB_READ_TIMEOUT", BACKENDS),
    ),
    *_group("GCS backend settings",
        _later("gcs_bucket", "GCS_BUCKET", BACKENDS),
        _later("gcs_project", "GCS_PROJECT", BACKENDS),
        _later("gcs_base_path", "GCS_BASE_PATH", BACKENDS),
        _later("gcs_ttl", "GCS_TTL", BACKENDS),
        _later("gcs_threadpool_maxsize", None, BACKENDS),
        _later("firestore_project", None, BACKENDS),
    ),
    *_group("Elasticsearch backend settings",
        _later("elasticsearch_retry_on_timeout", "CELERY_ELASTICSEARCH_RETRY_ON_TIMEOUT", BACKENDS),
        _later("elasticsearch_max_retries", "CELERY_ELASTICSEARCH_MAX_RETRIES", BACKENDS),
        _later("elasticsearch_timeout", "CELERY_ELASTICSEARCH_TIMEOUT", BACKENDS),
        _later("elasticsearch_save_meta_as_text", "CELERY_ELASTICSEARCH_SAVE_META_AS_TEXT",
               BACKENDS),
    ),
    *_group("Couchbase backend settings",
        _later("couchbase_backend_settings", "CELERY_COUCHBASE_BACKEND_SETTINGS", BACKENDS),
    ),
    *_group("ArangoDB backend settings",
        _later("arangodb_backend_settings", "CELERY_ARANGODB_BACKEND_SETTINGS", BACKENDS),
    ),
    *_group("CosmosDB backend settings",
        _later("cosmosdbsql_database_name", "COSMOSDBSQL_DATABASE_NAME", BACKENDS),
        _later("cosmosdbsql_collection_name", "COSMOSDBSQL_COLLECTION_NAME", BACKENDS),
        _later("cosmosdbsql_consistency_level", "COSMOSDBSQL_CONSISTENCY_LEVEL", BACKENDS),
        _later("cosmosdbsql_max_retry_attempts", "COSMOSDBSQL_MAX_RETRY_ATTEMPTS", BACKENDS),
        _later("cosmosdbsql_max_retry_wait_time", "COSMOSDBSQL_MAX_RETRY_WAIT_TIME", BACKENDS),
    ),
    *_group("Message Routing",
        _same("task_queues", "CELERY_QUEUES",
              "Queue(name, Exchange(...), routing_key=...): a routing_key or exchange in a route "
              "picks the queue that declares it; a worker without -Q consumes every one"),
        _same("task_routes", "CELERY_ROUTES",
              "queue names, or an exchange and routing_key that name a Queue of task_queues"),
        _moot("task_queue_max_priority", "CELERY_QUEUE_MAX_PRIORITY",
              "every queue has priorities 0-9 (9 first) on every broker"),
        _same("task_default_priority", "CELERY_DEFAULT_PRIORITY", "0-9, 9 first; default 0"),
        _later("task_inherit_parent_priority", "CELERY_INHERIT_PARENT_PRIORITY",
               "a task sent from a task gets task_default_priority", same_value=False),
        _same("worker_direct", "CELERY_WORKER_DIRECT"),
        _moot("task_create_missing_queues", "CELERY_CREATE_MISSING_QUEUES", AMQP, same_value=True),
        _moot("task_create_missing_queue_type", "CELERY_CREATE_MISSING_QUEUE_TYPE", AMQP),
        _moot("task_create_missing_queue_exchange_type",
              "CELERY_CREATE_MISSING_QUEUE_EXCHANGE_TYPE",
              AMQP),
        _same("task_default_queue", "CELERY_DEFAULT_QUEUE",
              "default 'celeriac' (Celery: 'celery'): a renamed project's queue names agree"),
        _moot("task_default_queue_type", "CELERY_DEFAULT_QUEUE_TYPE", AMQP),
        _moot("task_default_exchange", "CELERY_DEFAULT_EXCHANGE", AMQP),
        _moot("task_default_exchange_type", "CELERY_DEFAULT_EXCHANGE_TYPE", AMQP),
        _moot("task_default_routing_key", "CELERY_DEFAULT_ROUTING_KEY", AMQP),
        _moot("task_default_delivery_mode", "CELERY_DEFAULT_DELIVERY_MODE",
              "every message is kept on disk (SQLite, or Redis with appendonly yes)"),
    ),
    *_group("Broker Settings",
        _same("broker_url", "BROKER_URL", "sqlite://, redis://, rediss://, redis+sentinel://"),
        _later("broker_read_url", "BROKER_READ_URL", "one broker_url serves both"),
        _later("broker_write_url", "BROKER_WRITE_URL", "one broker_url serves both"),
        _later("broker_failover_strategy", "BROKER_FAILOVER_STRATEGY",
               "one broker URL; redis+sentinel:// finds the master again after a fail-over"),
        _moot("broker_heartbeat", "BROKER_HEARTBEAT", "the worker renews its leases instead"),
        _moot("broker_heartbeat_checkrate", "BROKER_HEARTBEAT_CHECKRATE",
              "the worker renews its leases instead"),
        _later("broker_use_ssl", "BROKER_USE_SSL",
               "use a rediss:// URL with ?ssl_ca_certs=... (certificates are checked)"),
        _moot("broker_pool_limit", "BROKER_POOL_LIMIT",
              "each broker manages its own connections"),
        _moot("broker_pool_acquire_timeout", "BROKER_POOL_ACQUIRE_TIMEOUT",
              "each broker manages its own connections"),
        _moot("broker_connection_timeout", "BROKER_CONNECTION_TIMEOUT",
              "Redis: broker_transport_options['socket_connect_timeout'] (3 s)"),
        _moot("broker_connection_retry", "BROKER_CONNECTION_RETRY", OUTAGE, same_value=True),
        _moot("broker_connection_retry_on_startup", "BROKER_CONNECTION_RETRY_ON_STARTUP",
              OUTAGE, same_value=True),
        _moot("broker_connection_max_retries", "BROKER_CONNECTION_MAX_RETRIES", OUTAGE),
        _moot("broker_channel_error_retry", "BROKER_CHANNEL_ERROR_RETRY", OUTAGE),
        _moot("broker_login_method", "BROKER_LOGIN_METHOD", "AMQP only"),
        _moot("broker_native_delayed_delivery_queue_type",
              "BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE",
              IN_BROKER),
        _same("broker_transport_options", "BROKER_TRANSPORT_OPTIONS",
              "lease_seconds (visibility_timeout), global_keyprefix, socket timeouts; see README"),
        _later("broker_transport", "BROKER_TRANSPORT", "the URL's scheme names the broker"),
        _later("broker_host", "BROKER_HOST", BROKER_URL),
        _later("broker_port", "BROKER_PORT", BROKER_URL),
        _later("broker_user", "BROKER_USER", BROKER_URL),
        _later("broker_password", "BROKER_PASSWORD", BROKER_URL),
        _later("broker_vhost", "BROKER_VHOST", BROKER_URL),
    ),
    *_group("Worker",
        _same("imports", "CELERY_IMPORTS"),
        _same("include", "CELERY_INCLUDE"),
        _moot("worker_deduplicate_successful_tasks", "CELERYD_DEDUPLICATE_SUCCESSFUL_TASKS",
              "an outcome is stored and its message acknowledged in one step, and a result keeps "
              "its first final state"),
        _same("worker_concurrency", "CELERYD_CONCURRENCY"),
        _same("worker_prefetch_multiplier", "CELERYD_PREFETCH_MULTIPLIER",
              "default 1 (Celery: 4): a worker fetches only for free processes"),
        _moot("worker_eta_task_limit", "CELERYD_ETA_TASK_LIMIT", IN_BROKER),
        _moot("worker_disable_prefetch", "CELERYD_DISABLE_PREFETCH",
              "a worker fetches only for free processes (with worker_prefetch_multiplier 1)"),
        _moot("worker_enable_prefetch_count_reduction", "CELERYD_ENABLE_PREFETCH_COUNT_REDUCTION",
              "a worker fetches only for free processes, after an outage too"),
        _moot("worker_lost_wait", "CELERYD_WORKER_LOST_WAIT", LEASES),
        _same("worker_max_tasks_per_child", "CELERYD_MAX_TASKS_PER_CHILD"),
        _same("worker_max_memory_per_child", "CELERYD_MAX_MEMORY_PER_CHILD"),
        _same("worker_disable_rate_limits", "CELERY_DISABLE_RATE_LIMITS"),
        _moot("worker_state_db", "CELERYD_STATE_DB", CONTROL),
        _moot("worker_timer_precision", "CELERYD_TIMER_PRECISION", IN_BROKER),
        _later("worker_enable_remote_control", "CELERY_ENABLE_REMOTE_CONTROL",
               CONTROL, same_value=True),
        _moot("worker_proc_alive_timeout", "CELERYD_PROC_ALIVE_TIMEOUT",
              "the main process replaces a pool process as soon as it dies"),
        _moot("worker_cancel_long_running_tasks_on_connection_loss",
              "CELERYD_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS",
              "a worker that lost a lease can neither store the outcome nor acknowledge the "
              "message"),
        _moot("worker_detect_quorum_queues", "CELERYD_DETECT_QUORUM_QUEUES", AMQP),
        _moot("worker_soft_shutdown_timeout", "CELERYD_SOFT_SHUTDOWN_TIMEOUT",
              "on SIGTERM running tasks get worker_shutdown_timeout (30 s), then are given back"),
        _moot("worker_enable_soft_shutdown_on_idle", "CELERYD_ENABLE_SOFT_SHUTDOWN_ON_IDLE",
              "on SIGTERM a worker gives back what has not started; countdowns, ETAs and retries "
              "wait in the broker, not in worker memory"),
    ),
    *_group("Events",
        _moot("worker_send_task_events", "CELERY_SEND_EVENTS", EVENTS, same_value=True),
        _same("task_send_sent_event", "CELERY_SEND_TASK_SENT_EVENT",
              "the client writes task-sent to the result backend's task history"),
        _moot("event_queue_ttl", "CELERY_EVENT_QUEUE_TTL", EVENTS),
        _moot("event_queue_expires", "CELERY_EVENT_QUEUE_EXPIRES", EVENTS),
        _moot("event_queue_durable", "CELERY_EVENT_QUEUE_DURABLE", EVENTS),
        _moot("event_queue_exclusive", "CELERY_EVENT_QUEUE_EXCLUSIVE", EVENTS),
        _moot("event_queue_prefix", "CELERY_EVENT_QUEUE_PREFIX", EVENTS),
        _moot("event_exchange", "CELERY_EVENT_EXCHANGE", EVENTS),
        _moot("event_serializer", "CELERY_EVENT_SERIALIZER", EVENTS),
        _later("events_logfile", None, EVENTS_DAEMON),
        _later("events_pidfile", None, EVENTS_DAEMON),
        _later("events_uid", None, EVENTS_DAEMON),
        _later("events_gid", None, EVENTS_DAEMON),
        _later("events_umask", None, EVENTS_DAEMON),
        _later("events_executable", None, EVENTS_DAEMON),
    ),
    *_group("Remote Control Commands",
        _moot("control_queue_ttl", "CONTROL_QUEUE_TTL", CONTROL),
        _moot("control_queue_expires", "CONTROL_QUEUE_EXPIRES", CONTROL),
        _moot("control_exchange", "CONTROL_EXCHANGE", CONTROL),
        _moot("control_queue_durable", "CONTROL_QUEUE_DURABLE", CONTROL),
        _moot("control_queue_exclusive", "CONTROL_QUEUE_EXCLUSIVE", CONTROL),
    ),
    *_group("Logging",
        _later("worker_hijack_root_logger", "CELERYD_HIJACK_ROOT_LOGGER",
               "celeriac worker and beat always set up the root logger (-l LEVEL, on stderr)",
               same_value=True),
        _later("worker_log_color", "CELERYD_LOG_COLOR",
               "log lines are plain text", same_value=False),
        _later("worker_log_format", "CELERYD_LOG_FORMAT",
               "log lines have Celery's default format, [%(asctime)s: "
               "%(levelname)s/%(processName)s] %(message)s", same_value=LOG_FORMAT),
        _later("worker_log_datefmt", "CELERYD_LOG_DATEFMT", "dates have logging's format"),
        _later("worker_task_log_format", "CELERYD_TASK_LOG_FORMAT",
               "a task's log lines have the worker's format, [%(asctime)s: "
               "%(levelname)s/%(processName)s] %(message)s"),
        _later("worker_task_log_datefmt", "CELERYD_TASK_LOG_DATEFMT",
               "dates have logging's format"),
        _later("worker_redirect_stdouts", "CELERY_REDIRECT_STDOUTS",
               "what tasks print goes to the worker's stdout and stderr, not to the log",
               same_value=False),
        _later("worker_redirect_stdouts_level", "CELERY_REDIRECT_STDOUTS_LEVEL",
               "what tasks print goes to the worker's stdout and stderr, not to the log"),
    ),
    *_group("Security",
        _same("security_key", "CELERY_SECURITY_KEY",
              "the shared secret itself (HMAC-SHA256), not the path of a private key file"),
        _later("security_key_password", "CELERY_SECURITY_KEY_PASSWORD",
               "messages are signed with the shared secret security_key, not with X.509 keys"),
        _later("security_certificate", "CELERY_SECURITY_CERTIFICATE",
               "messages are signed with the shared secret security_key, not with X.509 "
               "certificates"),
        _later("security_cert_store", "CELERY_SECURITY_CERT_STORE",
               "messages are signed with the shared secret security_key, not with X.509 "
               "certificates"),
        _later("security_digest", "CELERY_SECURITY_DIGEST",
               "messages are signed with HMAC-SHA256", same_value="sha256"),
    ),
    *_group("Custom Component Classes (advanced)",
        _later("worker_pool", "CELERYD_POOL", "give -P prefork|threads|solo", same_value="prefork"),
        _later("worker_pool_restarts", "CELERYD_POOL_RESTARTS", "no pool_restart command yet"),
        _moot("worker_pool_putlocks", "CELERYD_POOL_PUTLOCKS",
              "a worker fetches only for free processes"),
        _later("worker_pool_start_method", "CELERYD_POOL_START_METHOD",
               "the prefork pool forks", same_value="fork"),
        _later("worker_autoscaler", "CELERYD_AUTOSCALER",
               "--autoscale MAX,MIN uses celeriac's own autoscaler; a custom class is not used"),
        _moot("worker_consumer", "CELERYD_CONSUMER", CLASSES),
        _moot("worker_timer", "CELERYD_TIMER", CLASSES),
        _moot("worker_agent", "CELERYD_AGENT", CLASSES),
        _same("worker_logfile", None, "the default of worker --logfile"),
        _same("worker_pidfile", None, "the default of worker --pidfile"),
        _same("worker_uid", None, "the default of worker --uid"),
        _same("worker_gid", None, "the default of worker --gid"),
        _same("worker_umask", None, "the default of worker --umask"),
        _same("worker_executable", None, "the default of worker --executable"),
    ),
    *_group("Beat Settings",
        _same("beat_schedule", "CELERYBEAT_SCHEDULE"),
        _later("beat_scheduler", "CELERYBEAT_SCHEDULER",
               "celeriac's beat keeps the schedule's state in the result backend; schedulers such "
               "as django_celery_beat's are not used"),
        _moot("beat_schedule_filename", "CELERYBEAT_SCHEDULE_FILENAME",
              "beat keeps the schedule's state in the result backend"),
        _moot("beat_sync_every", "CELERYBEAT_SYNC_EVERY",
              "beat keeps the schedule's state in the result backend"),
        _same("beat_max_loop_interval", "CELERYBEAT_MAX_LOOP_INTERVAL", "default 5 s"),
        _moot("beat_cron_starting_deadline", "CELERYBEAT_CRON_STARTING_DEADLINE",
              "a fire later than beat_missed_after (30 s) is missed: skipped, or sent once with "
              "beat_missed_policy = 'run_once'"),
        _moot("beat_enable_remote_control", "CELERYBEAT_ENABLE_REMOTE_CONTROL",
              "celeriac schedule pause/resume/run/remove acts through the store"),
        _moot("beat_remote_control_max_tick_age", "CELERYBEAT_REMOTE_CONTROL_MAX_TICK_AGE",
              "celeriac schedule pause/resume/run/remove acts through the store"),
        _later("beat_logfile", None, DAEMON),
        _later("beat_pidfile", None, DAEMON),
        _later("beat_uid", None, DAEMON),
        _later("beat_gid", None, DAEMON),
        _later("beat_umask", None, DAEMON),
        _later("beat_executable", None, DAEMON),
    ),
    *_group("Django",
        _later("db_reuse_max", "CELERY_DB_REUSE_MAX",
               "celeriac has no Django fix-up yet: close old connections in a task_prerun receiver",
               ),
    ),
)
# fmt: on

BY_NAME: Final[dict[str, CelerySetting]] = {row.name: row for row in TABLE}
BY_OLD_NAME: Final[dict[str, CelerySetting]] = {row.old: row for row in TABLE if row.old}
