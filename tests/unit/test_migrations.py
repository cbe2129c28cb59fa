from alembic import command


def test_migrations_match_the_models(app):
    """The schema the tests run on was built by the migrations; they must match the models.

    alembic's `check` raises if autogenerate would write a new migration.
    """
    config = app.extensions["migrate"].migrate.get_config(
        app.extensions["migrate"].directory)
    command.check(config)

