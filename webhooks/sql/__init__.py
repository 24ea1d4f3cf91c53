"""The webhooks stage's SQL files; ``load_sql(name)`` reads ``<name>.sql`` from here."""

from storage.sql_files import sql_loader

load_sql = sql_loader(__name__)
