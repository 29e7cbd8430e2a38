"""The registry's database: typed SQLAlchemy models, engine set-up and Alembic migrations."""
