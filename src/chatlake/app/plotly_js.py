"""Give the charts plotly's cartesian build of plotly.js, when it is installed.

dcc.Graph loads plotly.js from one fixed URL when the first chart mounts, and
the browser parses all of it before drawing anything. Dash serves the full
build there: 4.8 MB of script, most of it for maps, 3-D and other traces these
pages never draw. Their charts are bar, scatter and heatmap traces, which
plotly's cartesian build holds in 1.5 MB, and parsing it instead takes about
0.7 s off the dashboard's first paint on this 2-core machine.

`make` fetches that build from the npm registry into ``vendor/``, at the version
of plotly.js the installed plotly package carries. The app answers the URL
dcc.Graph loads with it; when it is missing, or of another version than the
plotly package, the app keeps serving Dash's full build, as it does with
``CHATLAKE_PLOTLY_BUILD=full`` (for charts of other trace types).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import dash
import flask
from plotly.offline import get_plotlyjs_version

from chatlake.errors import ConfigError

log = logging.getLogger(__name__)

ENV_BUILD = "CHATLAKE_PLOTLY_BUILD"
BUILDS = ("cartesian", "full")
BUNDLE = Path(__file__).with_name("vendor") / "plotly-cartesian.min.js"
# Where dcc.Graph fetches plotly.js when the app serves its scripts itself.
DASH_PLOTLY_PATH = "_dash-component-suites/plotly/package_data/plotly.min.js"
# The traces the cartesian build registers (a browser test reads them from it).
CARTESIAN_TRACES = frozenset(
    {
        "bar",
        "box",
        "contour",
        "heatmap",
        "histogram",
        "histogram2d",
        "histogram2dcontour",
        "image",
        "pie",
        "scatter",
        "scatterternary",
        "violin",
    }
)
_HEADER = re.compile(rb"plotly\.js \(cartesian - minified\) v(\S+)")


def bundle_version(path: Path) -> str | None:
    """The plotly.js version in the bundle's header, or None if it is not one."""
    try:
        with path.open("rb") as bundle:
            head = bundle.read(256)
    except OSError:
        return None
    match = _HEADER.search(head)
    return match.group(1).decode() if match else None


def bundle_problem(bundle: Path, wanted: str) -> str | None:
    """Why ``bundle`` can't stand in for plotly.js ``wanted``; None if it can."""
    found = bundle_version(bundle)
    if found is None:
        return f"{bundle} is missing or not plotly's cartesian build"
    if found != wanted:
        return f"{bundle} holds v{found}, the plotly package v{wanted}"
    # make wrote the checksum of what npm verified: a cut or edited file since
    # would break every chart, so it is not served.
    checksum = bundle.with_name(bundle.name + ".sha256")
    try:
        expected = checksum.read_text().split()[0]
        actual = hashlib.sha256(bundle.read_bytes()).hexdigest()
    except (OSError, IndexError):
        return f"{checksum} is missing or empty"
    if actual != expected:
        return f"{bundle} does not match {checksum.name}"
    return None


def wanted_build() -> str:
    """The build $CHATLAKE_PLOTLY_BUILD asks for (cartesian by default)."""
    build = os.environ.get(ENV_BUILD, "").strip().lower() or BUILDS[0]
    if build not in BUILDS:
        given = os.environ[ENV_BUILD]
        raise ConfigError(f"{ENV_BUILD}={given!r}: expected one of {', '.join(BUILDS)}")
    return build


def use_cartesian_build(app: dash.Dash, bundle: Path = BUNDLE) -> bool:
    """Serve ``bundle`` where dcc.Graph loads plotly.js; False if it can't be used."""
    if wanted_build() == "full":
        return False
    if not app.config.serve_locally:
        return False  # the charts load plotly.js from a CDN, not from this app
    wanted = get_plotlyjs_version()
    problem = bundle_problem(bundle, wanted)
    if problem is not None:
        log.warning(
            "charts load plotly's full build (4.8 MB): %s; `rm -r %s && make` "
            "fetches the cartesian one again",
            problem,
            bundle.parent,
        )
        return False

    path = f"{app.config.routes_pathname_prefix}{DASH_PLOTLY_PATH}"
    # The file as checked: changed or gone since, it is checked again.
    checked = {"as": _file_key(bundle), "ok": True}

    @app.server.before_request
    def serve_cartesian_build():
        request = flask.request
        if request.path != path or request.args.get("build") == "full":
            return None
        key = _file_key(bundle)
        if key != checked["as"]:
            problem = bundle_problem(bundle, wanted) if key else f"{bundle} is gone"
            checked.update({"as": key, "ok": problem is None})
            if problem is not None:
                log.warning("serving plotly's full build: %s", problem)
        if not checked["ok"]:
            return None  # Dash's own full build answers
        try:
            return flask.send_file(bundle, mimetype="text/javascript")
        except OSError:
            return None  # gone this instant: the next request logs it

    return True


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def load_early(app: dash.Dash, page_paths: tuple[str, ...]) -> None:
    """Have the chart pages compile plotly.js while Dash starts and reports run.

    Left to itself, dcc.Graph asks for plotly.js only once the layout holding
    the first chart has arrived, then waits for it, then draws. On these pages
    the page's head loads it as a deferred script instead, so the browser
    fetches and compiles it during the callback that runs the reports.

    A Graph mounting before that script has run would load plotly.js a second
    time. dcc.Graph waits on ``window.Plotly`` when it finds it set, and
    resolves it as a promise, so the head sets it to one that the script's
    load settles; the script itself then replaces it with plotly. A script
    that fails to load or to run makes the page ask for Dash's full build
    (``?build=full`` passes the cartesian one by).
    """
    if not app.config.serve_locally:
        return
    url = f"{app.config.requests_pathname_prefix}{DASH_PLOTLY_PATH}"
    head = _EARLY_LOAD.replace("{url}", url)

    @app.server.after_request
    def add_plotly_to_head(response: flask.Response) -> flask.Response:
        # The pages are Dash's small index document, never a streamed body.
        if (
            flask.request.path in page_paths
            and response.mimetype == "text/html"
            and not response.direct_passthrough
        ):
            body = response.get_data(as_text=True)
            response.set_data(body.replace("</head>", f"{head}</head>", 1))
        return response


_EARLY_LOAD = """<script defer id="plotly-js" src="{url}"></script>
<script>
(function () {
  var script = document.getElementById("plotly-js");
  var waiting = new Promise(function (resolve, reject) {
    // plotly.js replaces window.Plotly (this promise) when it runs.
    function ran() { return window.Plotly !== waiting; }

    // If this build does not arrive or does not run, ask for Dash's full one.
    function loadFullBuild() {
      var full = document.createElement("script");
      full.src = script.src + "?build=full";
      full.onload = function () {
        ran() ? resolve() : reject(new Error("plotly.js did not run"));
      };
      full.onerror = function () {
        reject(new Error("plotly.js did not load from " + full.src));
      };
      document.head.appendChild(full);
    }

    script.addEventListener("load", function () {
      ran() ? resolve() : loadFullBuild();
    });
    script.addEventListener("error", loadFullBuild);
  });
  window.Plotly = waiting;
})();
</script>
"""
