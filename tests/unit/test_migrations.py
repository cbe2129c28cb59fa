import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"
DATED = re.compile(r"\d{4}_\d\d_\d\d_\d{4}-[0-9a-f]{12}_\w+\.py")


def test_migrations_match_the_models(app):
    """The schema the tests run on was built by the migrations; they must match the models.

    alembic's `check` raises if autogenerate would write a new migration.
    """
    config = app.extensions["migrate"].migrate.get_config(
        app.extensions["migrate"].directory)
    command.check(config)


def test_migration_files_listed_by_name_are_the_history_in_order():
    """Every file name starts with its date (alembic.ini's file_template), so `ls` shows the
    history oldest first: sorted by name, each file's down_revision is the file before it."""
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert "%%(year)d_%%(month).2d_%%(day).2d" in (MIGRATIONS / "alembic.ini").read_text()
    files = sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))
    assert files and all(DATED.fullmatch(name) for name in files), files
    by_file = {Path(rev.path).name: rev for rev in script.walk_revisions()}
    assert sorted(by_file) == files
    previous = None
    for name in files:
        assert by_file[name].down_revision == previous, name
        previous = by_file[name].revision
