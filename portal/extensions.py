"""Extensions, created unbound and bound in create_app."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate and `alembic check` skip an index made on one database only
    (`Index(...).ddl_if(dialect=...)`, e.g. PostgreSQL's trigram index) on the others."""
    ddl_if = getattr(obj, "_ddl_if", None) if type_ == "index" and not reflected else None
    if ddl_if is None or ddl_if.dialect is None:
        return True
    from alembic import context

    dialect = context.get_context().dialect.name
    wanted = ddl_if.dialect
    return dialect == wanted if isinstance(wanted, str) else dialect in wanted


db = SQLAlchemy(model_class=Base)
migrate = Migrate(include_object=_include_object)
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()


def payment_gateway():
    """The configured payment gateway (PAYMENT_GATEWAY), made once per app."""
    from flask import current_app

    return current_app.extensions["payment_gateway"]
