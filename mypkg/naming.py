"""The constraint naming convention of the schema, in a module light enough for the runner.

Every constraint a revision leaves unnamed gets its name from this convention, under
``alembic`` and ``mypkg-migrate`` alike (:mod:`mypkg.migrate.runtime.environment` hands it to
Alembic without importing the ORM). SQLite's batch mode can only drop or alter
constraints it can name, so it has been in place since revision 1: change it only with a
revision that renames the existing constraints.
"""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
