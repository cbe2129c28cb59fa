"""What a test may change and the next test must not see, now that the suite shares one app.

The `app` fixture (tests/conftest.py) builds the app once per run. What each test used to
get from a new app it now gets from here, after every test:

- AppState: the shared app's config (tests set PROPAGATE_EXCEPTIONS, TESTING, page sizes,
  keys, rate limits ...), its extensions and its Jinja globals and filters go back to what
  they were when the app was built. Its shape (routes, view functions, request hooks, error
  handlers, context processors, blueprints, the WSGI middleware) can't be put back: a test
  that changes it fails, and is marked `@pytest.mark.own_app` to get an app of its own
  (Flask refuses new routes on an app that has served a request anyway).
- ProcessState: what create_app sets for the whole process rather than for its app, which a
  test (or any app a test makes: make_app(...) with overrides, create_app(...)) leaves
  behind: the logging set-up (the root logger's level, the portal's handler, its stream,
  the masking filters on the request-path loggers), the two-factor sealing keys, the
  password hashing cost, the versions' actor, the mail renderer, the services' hooks
  (charges, account closing). It is saved once the shared app is built and put back after
  every test; before that (a run without the shared app) each test's starting state is put
  back.
"""

import copy
import importlib
import logging

# module:attribute, set for the whole process by create_app (or by a test that calls what
# create_app calls). Missing ones (a module moved) are skipped.
MODULE_GLOBALS = (
    "portal.sealing:_box",
    "portal.services.auth:_hash_method",
    "portal.versioning:_actor_provider",
    "portal.mail.compose:_renderer",
    "portal.services.charges:ON_SUCCESS",
    "portal.services.charges:ON_FAILURE",
    "portal.services.lifecycle:ON_CLOSE",
)
# The loggers create_app sets: the app's ("portal", its level) and those logmask.install
# puts the masking filter on.
LOGGERS = ("portal", "werkzeug", "gunicorn.access", "gunicorn.error")


def _resolve(spec: str):
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return (module, attr) if hasattr(module, attr) else None


class ProcessState:
    def __init__(self):
        from portal import logconfig, logmask

        self._mask_type = logmask.MaskTokens
        self._handler_type = logconfig._PortalHandler
        root = logging.getLogger()
        self.root_level = root.level
        self.handler = logconfig.handler()
        self.handler_stream = getattr(self.handler, "stream", None)
        self.handler_filters = list(self.handler.filters) if self.handler else []
        self.handler_level = self.handler.level if self.handler else None
        self.loggers = {}
        for name in LOGGERS:
            logger = logging.getLogger(name)
            masks = [f for f in logger.filters if isinstance(f, self._mask_type)]
            self.loggers[name] = (logger.level, masks)
        self.globals = []
        for spec in MODULE_GLOBALS:
            found = _resolve(spec)
            if found is None:
                continue
            module, attr = found
            value = getattr(module, attr)
            contents = (dict(value) if isinstance(value, dict)
                        else list(value) if isinstance(value, list) else None)
            self.globals.append((module, attr, value, contents))

    def restore(self) -> None:
        root = logging.getLogger()
        root.setLevel(self.root_level)
        for h in [h for h in root.handlers if isinstance(h, self._handler_type)]:
            if h is not self.handler:
                root.removeHandler(h)
        if self.handler is not None:
            if self.handler not in root.handlers:
                root.addHandler(self.handler)
            if self.handler.stream is not self.handler_stream:
                self.handler.setStream(self.handler_stream)
            self.handler.filters[:] = self.handler_filters
            self.handler.setLevel(self.handler_level)
        for name, (level, masks) in self.loggers.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.filters[:] = [f for f in logger.filters
                                 if not isinstance(f, self._mask_type)] + masks
        for module, attr, value, contents in self.globals:
            setattr(module, attr, value)
            if isinstance(contents, dict):
                value.clear()
                value.update(contents)
            elif isinstance(contents, list):
                value[:] = contents


def _shape(app) -> dict:
    """What a test can add to an app but not take away."""

    def hooks(registry: dict) -> dict:
        return {key: tuple(funcs) for key, funcs in registry.items() if funcs}

    return {
        "routes": sorted((r.rule, r.endpoint, tuple(sorted(r.methods or ())))
                         for r in app.url_map.iter_rules()),
        "view functions": dict(app.view_functions),
        "before_request": hooks(app.before_request_funcs),
        "after_request": hooks(app.after_request_funcs),
        "teardown_request": hooks(app.teardown_request_funcs),
        "teardown_appcontext": tuple(app.teardown_appcontext_funcs),
        "context processors": hooks(app.template_context_processors),
        "url processors": (hooks(app.url_value_preprocessors),
                           hooks(app.url_default_functions)),
        # (Flask's lookups add empty entries to these defaultdicts: only what is there.)
        "error handlers": {bp: found for bp, codes in app.error_handler_spec.items()
                           if (found := {code: dict(h) for code, h in codes.items() if h})},
        "blueprints": dict(app.blueprints),
        "wsgi_app": app.wsgi_app,
    }


class AppState:
    def __init__(self, app):
        self.config = copy.deepcopy(dict(app.config))
        self.extensions = dict(app.extensions)
        self.jinja_globals = dict(app.jinja_env.globals)
        self.jinja_filters = dict(app.jinja_env.filters)
        self.shape = _shape(app)

    def restore(self, app) -> list[str]:
        """Put the config, extensions and Jinja globals back; return what else changed
        (the shape: routes, hooks ...), which can't be put back."""
        app.config.clear()
        app.config.update(copy.deepcopy(self.config))
        app.extensions.clear()
        app.extensions.update(self.extensions)
        app.jinja_env.globals.clear()
        app.jinja_env.globals.update(self.jinja_globals)
        app.jinja_env.filters.clear()
        app.jinja_env.filters.update(self.jinja_filters)
        now = _shape(app)
        return [name for name, value in self.shape.items() if now[name] != value]
